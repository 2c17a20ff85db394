# Sourced by the image builders: debian_mirror prints the Debian archive this host's apt uses
# (deb822 .sources first, then sources.list), as the host was installed from it and it is
# known to be reachable; never a fixed one. Prints nothing when the sources name none.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        sed -nE 's#^URIs:[[:space:]]*([^[:space:]]+/debian)/?[[:space:]]*$#\1#p' "$f"
    done | head -n1 | grep . && return 0
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        sed -nE 's#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+/debian)/?[[:space:]].*#\2#p' "$f"
    done | head -n1
}
