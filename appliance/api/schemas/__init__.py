"""JSON schemas of every request the API serves, one module per service (compute, network,
volume, image, identity, monostack) over the shared parameter types in `types`.

A handler reads its body only through `appliance.api.validation.valid_body(request, SCHEMA)`
and bounds its query string with `valid_query`; the limits follow what Nova, Neutron, Cinder,
Glance and Keystone accept (so the openstack CLI and openstacksdk pass unchanged), plus bounds
upstream leaves open (list lengths, counts) since one host's memory is the limit here.
"""
