"""The one door to libvirt: only modules in this package import `libvirt`."""
