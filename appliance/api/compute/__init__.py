"""Nova v2.1 under /compute/v2.1 (catalog type "compute"), plus the serial console websocket
at /compute/console. Modules: servers (lifecycle, actions, consoles), flavors (+ key pairs),
misc (discovery, limits, quotas, hypervisors, zones, server groups), views (bodies)."""
from __future__ import annotations

from aiohttp import web

from appliance.api.compute import flavors, instance_actions, misc, servers
from appliance.api.compute.common import versioned

P = "/compute/v2.1"


def routes() -> list[web.RouteDef]:
    v = versioned
    table = [
        ("GET", "/compute", misc.versions), ("GET", "/compute/", misc.versions),
        ("GET", P, misc.version_v21), ("GET", P + "/", misc.version_v21),
        ("GET", "/compute/v2", misc.version_v20), ("GET", "/compute/v2/", misc.version_v20),
        # servers
        ("POST", P + "/servers", servers.create_server),
        ("GET", P + "/servers", servers.list_servers),
        ("GET", P + "/servers/detail", servers.list_servers_detail),
        ("GET", P + "/servers/{id}", servers.show_server),
        ("PUT", P + "/servers/{id}", servers.update_server),
        ("DELETE", P + "/servers/{id}", servers.delete_server),
        ("POST", P + "/servers/{id}/action", servers.server_action),
        ("GET", P + "/servers/{id}/metadata", servers.get_metadata),
        ("POST", P + "/servers/{id}/metadata", servers.set_metadata),
        ("PUT", P + "/servers/{id}/metadata", servers.set_metadata),
        ("DELETE", P + "/servers/{id}/metadata/{key}", servers.delete_metadata_item),
        ("GET", P + "/servers/{id}/tags", servers.list_tags),
        ("PUT", P + "/servers/{id}/tags/{tag}", servers.put_tag),
        ("DELETE", P + "/servers/{id}/tags/{tag}", servers.delete_tag),
        ("GET", P + "/servers/{id}/os-volume_attachments", servers.list_volume_attachments),
        ("POST", P + "/servers/{id}/os-volume_attachments", servers.attach_volume),
        ("GET", P + "/servers/{id}/os-volume_attachments/{volume_id}",
         servers.show_volume_attachment),
        ("DELETE", P + "/servers/{id}/os-volume_attachments/{volume_id}",
         servers.detach_volume),
        ("GET", P + "/servers/{id}/ips", servers.list_ips),
        ("GET", P + "/servers/{id}/os-instance-actions", instance_actions.list_actions),
        ("GET", P + "/servers/{id}/os-instance-actions/{request_id}",
         instance_actions.show_action),
        ("GET", P + "/servers/{id}/os-security-groups", servers.list_server_security_groups),
        ("GET", P + "/servers/{id}/ips/{network}", servers.show_ips),
        ("GET", P + "/servers/{id}/os-interface", servers.list_interfaces),
        ("POST", P + "/servers/{id}/os-interface", servers.attach_interface),
        ("DELETE", P + "/servers/{id}/os-interface/{port_id}", servers.detach_interface),
        ("POST", P + "/servers/{id}/remote-consoles", servers.remote_console),
        ("GET", P + "/servers/{id}/diagnostics", servers.server_diagnostics),
        ("GET", P + "/servers/{id}/os-server-password", servers.show_server_password),
        ("DELETE", P + "/servers/{id}/os-server-password", servers.clear_server_password),
        # flavors
        ("GET", P + "/flavors", flavors.list_flavors),
        ("GET", P + "/flavors/detail", flavors.list_flavors_detail),
        ("POST", P + "/flavors", flavors.create_flavor),
        ("GET", P + "/flavors/{id}", flavors.show_flavor),
        ("PUT", P + "/flavors/{id}", flavors.update_flavor),
        ("DELETE", P + "/flavors/{id}", flavors.delete_flavor),
        ("GET", P + "/flavors/{id}/os-extra_specs", flavors.get_extra_specs),
        ("POST", P + "/flavors/{id}/os-extra_specs", flavors.set_extra_specs),
        ("GET", P + "/flavors/{id}/os-extra_specs/{key}", flavors.get_extra_specs),
        ("PUT", P + "/flavors/{id}/os-extra_specs/{key}", flavors.set_extra_specs),
        ("DELETE", P + "/flavors/{id}/os-extra_specs/{key}", flavors.delete_extra_spec),
        ("GET", P + "/flavors/{id}/os-flavor-access", flavors.flavor_access),
        ("POST", P + "/flavors/{id}/action", flavors.flavor_action),
        # key pairs
        ("GET", P + "/os-keypairs", flavors.list_keypairs),
        ("POST", P + "/os-keypairs", flavors.create_keypair),
        ("GET", P + "/os-keypairs/{name}", flavors.show_keypair),
        ("DELETE", P + "/os-keypairs/{name}", flavors.delete_keypair),
        # limits, quotas, hypervisors, zones, groups
        ("GET", P + "/limits", misc.limits),
        ("GET", P + "/os-quota-sets/{project_id}", misc.show_quotas),
        ("GET", P + "/os-quota-sets/{project_id}/detail", misc.show_quotas),
        ("GET", P + "/os-quota-sets/{project_id}/defaults", misc.default_quotas),
        ("PUT", P + "/os-quota-sets/{project_id}", misc.update_quotas),
        ("DELETE", P + "/os-quota-sets/{project_id}", misc.delete_quotas),
        ("GET", P + "/os-hypervisors", misc.list_hypervisors),
        ("GET", P + "/os-hypervisors/detail", misc.list_hypervisors),
        ("GET", P + "/os-hypervisors/statistics", misc.hypervisor_statistics),
        ("GET", P + "/os-hypervisors/{id}", misc.show_hypervisor),
        ("GET", P + "/os-hypervisors/{id}/monostack-usage", misc.hypervisor_usage),
        ("GET", P + "/os-availability-zone", misc.availability_zones),
        ("GET", P + "/os-availability-zone/detail", misc.availability_zones),
        ("GET", P + "/os-server-groups", misc.list_server_groups),
        ("POST", P + "/os-server-groups", misc.create_server_group),
        ("GET", P + "/os-server-groups/{id}", misc.show_server_group),
        ("DELETE", P + "/os-server-groups/{id}", misc.delete_server_group),
    ]
    out = [web.route(method, path, v(handler)) for method, path, handler in table]
    out.append(web.get("/compute/console", servers.console_websocket))
    return out
