"""Cinder v3 semantics over storage.volumes: volumes, snapshots, attachments, quotas.

    records.py    Volume / Snapshot / VolumeQuota dataclasses, status enums
    service.py    VolumeService: Cinder's status machine, asynchronous builds, and the seam
                  compute uses (volume_for_attach, mark_attached, mark_detached …)
    component.py  VolumeComponent: catalog (volumev3 + block-storage) and routes
                  (handlers in appliance/api/volume.py)
"""
