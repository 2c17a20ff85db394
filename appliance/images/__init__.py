"""Glance v2 semantics over storage.blobs: image records, sharing, quotas, verified uploads.

    records.py    Image / ImageMember / ImageQuota dataclasses and their status enums
    visibility.py who may see, list, change an image (pure functions of record + caller)
    service.py    ImageService: create, patch, upload (verified), download, import, members,
                  and the seams compute and volumes use (appliance/seams.py ImageSeam)
    component.py  ImageComponent: catalog entry and routes (handlers in appliance/api/image.py)
"""
