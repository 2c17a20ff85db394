"""Bytes on local disk. Knows nothing of the appliance (imports nothing from appliance/).

    atomic.py    the one atomic-write helper (temp + fsync + rename + fsync dir), fsync_dir
    errors.py    StorageError tree (NotFound, DiskFull, UnsafeImage, QemuImgError …)
    inspect.py   pure-Python image format inspector: verify(path, declared_format, max_size)
    qemu_img.py  the only place that runs qemu-img (explicit -f, prlimit, async)
    blobs.py     BlobStore: image blobs streamed in, hashed, verified, published atomically
    volumes.py   VolumeFiles: qcow2 volumes, cached image bases, internal snapshots
"""
