# The operator console in a browser (`install.sh --web [HOST:PORT]`), sourced by install.sh.
# A file of its own so tests can run these functions in a scratch root with stubbed commands.
#
# Off unless asked. Each browser tab runs a TUI process, so the console never runs as root:
# under systemd, packaging/systemd/monostack-web.service (a DynamicUser in
# monostack-operators, handed a copy of the TLS key); without systemd, the system user
# monostack-web (in monostack-operators, no shell, no home), started through setpriv with a
# clean environment and its own copy of the key in $WEB_RUN. Idempotent: a console that is up
# is left alone unless its program, certificate or address changed.
#
# Expects from the caller: SRC PREFIX ETC, say, warn, alive, systemd_running, and the
# variables changed and restart (set to 1 when something changed / the program changed).

WEB_USER=${WEB_USER:-monostack-web}
WEB_GROUP=${WEB_GROUP:-monostack-operators}
WEB_RUN=${WEB_RUN:-/run/monostack-web}
WEB_LOG=${WEB_LOG:-/var/log/monostack-web.log}
WEB_SOCKET=${WEB_SOCKET:-/run/monostack/api.sock}
WEB_UNIT_DIR=${WEB_UNIT_DIR:-/etc/systemd/system}
WEB_MAX_SESSIONS=${WEB_MAX_SESSIONS:-8}
WEB_HOW=""   # what enable_web_console did or found, for the summary

# HOST:PORT with a port an unprivileged process may bind (the console gets no capabilities).
web_listen_valid() {
  local port
  [[ $1 =~ ^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$ ]] || return 1
  port=${BASH_REMATCH[2]}
  [ "$port" -ge 1024 ] && [ "$port" -le 65535 ]
}

# Does something accept connections on HOST:PORT (0.0.0.0 and :: asked on loopback)?
web_up() {
  local host=${1%:*} port=${1##*:}
  host=${host#[}; host=${host%]}
  case "$host" in 0.0.0.0|"") host=127.0.0.1 ;; ::) host=::1 ;; esac
  python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)' \
    "$host" "$port" 2>/dev/null
}

web_url() {
  local host=${1%:*}
  case "$host" in 0.0.0.0|::|"[::]") host=$(hostname -f 2>/dev/null || hostname) ;; esac
  echo "https://$host:${1##*:}/"
}

# The address is kept in the daemon's config ([web] listen): `monostack status` looks there.
web_record_listen() {
  local conf=$ETC/monostack.toml
  if ! grep -q '^\[web\]' "$conf"; then
    printf '\n[web]\nlisten = "%s"\n' "$WEB_LISTEN" >> "$conf"
  elif [ "$(web_recorded_listen)" != "$WEB_LISTEN" ]; then
    sed -i "/^\[web\]/,/^\[/ s#^listen = .*#listen = \"$WEB_LISTEN\"#" "$conf"
    grep -q "^listen = \"$WEB_LISTEN\"" "$conf" || sed -i "/^\[web\]/a listen = \"$WEB_LISTEN\"" "$conf"
  else
    return 1  # nothing changed
  fi
}

web_recorded_listen() {
  sed -n '/^\[web\]/,/^\[/ s/^listen = "\(.*\)"/\1/p' "$ETC/monostack.toml" | head -1
}

web_unit_text() {
  sed -e "s#/opt/monostack#$PREFIX#g" -e "s#--listen [^ ]*#--listen $WEB_LISTEN#" \
      -e "s#--max-sessions [0-9]*#--max-sessions $WEB_MAX_SESSIONS#" \
      "$SRC/packaging/systemd/monostack-web.service"
}

enable_web_console_systemd() {
  local unit=$WEB_UNIT_DIR/monostack-web.service web_restart=$restart
  web_unit_text > "$unit.new"
  if ! cmp -s "$unit.new" "$unit"; then
    mv "$unit.new" "$unit"; systemctl daemon-reload; changed=1; web_restart=1
  else
    rm -f "$unit.new"
  fi
  if ! systemctl is-enabled --quiet monostack-web || ! systemctl is-active --quiet monostack-web; then
    systemctl enable --now monostack-web >/dev/null
    say "web console: systemctl enable --now monostack-web ($unit, a DynamicUser in $WEB_GROUP)"
    changed=1
  elif [ "$web_restart" = 1 ]; then
    say "web console: restarting it (systemctl restart monostack-web)"
    systemctl restart monostack-web
  fi
  WEB_HOW="systemd unit monostack-web (unprivileged DynamicUser; starts at boot)"
}

web_start_command() {
  # The subshell, setsid, nohup, setpriv and env all exec: the pid the shell gets is the
  # console's own. It runs from / (the installer's directory may be root's own, which the
  # console's user, and the TUI sessions it starts there, cannot read).
  (cd / && exec setsid nohup setpriv --reuid="$WEB_USER" --regid="$WEB_USER" --init-groups \
    --no-new-privs --inh-caps=-all \
    env -i HOME="$WEB_RUN" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    "$PREFIX/venv/bin/monostack" web --listen "$WEB_LISTEN" --socket "$WEB_SOCKET" \
      --cert "$ETC/tls/server.crt" --key "$WEB_RUN/server.key" \
      --max-sessions "$WEB_MAX_SESSIONS") >> "$WEB_LOG" 2>&1 < /dev/null &
  echo $! > "$WEB_RUN/web.pid"
}

enable_web_console_by_hand() {
  local pidfile=$WEB_RUN/web.pid web_restart=$restart
  if ! getent passwd "$WEB_USER" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --groups "$WEB_GROUP" "$WEB_USER"
    say "web console: made the system user $WEB_USER (in $WEB_GROUP, no shell, no home)"
    changed=1
  elif ! id -nG "$WEB_USER" | tr ' ' '\n' | grep -qx "$WEB_GROUP"; then
    usermod -a -G "$WEB_GROUP" "$WEB_USER"; changed=1; web_restart=1
  fi
  # Its own copy of the root-only TLS key, readable by it alone (systemd's LoadCredential).
  install -d -m 0700 "$WEB_RUN"
  chown "$WEB_USER:$WEB_USER" "$WEB_RUN"
  if ! cmp -s "$ETC/tls/server.key" "$WEB_RUN/server.key"; then
    install -m 0400 "$ETC/tls/server.key" "$WEB_RUN/server.key.new"
    chown "$WEB_USER:$WEB_USER" "$WEB_RUN/server.key.new"
    mv "$WEB_RUN/server.key.new" "$WEB_RUN/server.key"
    web_restart=1
  fi
  [ "$WEB_LISTEN" = "$WEB_PREVIOUS_LISTEN" ] || web_restart=1
  if alive "$pidfile" && [ "$web_restart" = 1 ]; then
    say "web console: restarting it (pid $(cat "$pidfile"))"
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 100); do alive "$pidfile" || break; sleep 0.1; done
  fi
  if ! alive "$pidfile"; then
    web_start_command
    changed=1
    for _ in $(seq 1 150); do web_up "$WEB_LISTEN" && break; alive "$pidfile" || break; sleep 0.2; done
    if web_up "$WEB_LISTEN"; then
      say "systemd is not PID 1 here: started the web console myself as user $WEB_USER" \
          "(pid $(cat "$pidfile"), $(web_url "$WEB_LISTEN"), log $WEB_LOG); it is not restarted at boot"
    else
      warn "the web console did not come up on $WEB_LISTEN (see $WEB_LOG)"
    fi
  fi
  WEB_HOW="started by install.sh as user $WEB_USER (pid $(cat "$pidfile"), log $WEB_LOG; not restarted at boot)"
}

enable_web_console() {
  WEB_PREVIOUS_LISTEN=$(web_recorded_listen)
  if web_record_listen; then
    say "web console address in $ETC/monostack.toml: [web] listen = \"$WEB_LISTEN\""
    changed=1
  fi
  if systemd_running; then
    enable_web_console_systemd
  else
    enable_web_console_by_hand
  fi
}

# `install.sh --no-web`: the console stops, is not started again by later runs, and its copy of
# the TLS key goes. The web user stays (a later --web reuses it).
disable_web_console() {
  local pidfile=$WEB_RUN/web.pid
  if [ -n "$(web_recorded_listen)" ]; then
    sed -i '/^\[web\]/,/^\[/ { /^\[web\]/d; /^listen = /d }' "$ETC/monostack.toml"
    # drop the blank line web_record_listen put before the section, if it now ends the file
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$ETC/monostack.toml"
    say "web console: [web] removed from $ETC/monostack.toml"
    changed=1
  fi
  if systemd_running; then
    if systemctl is-enabled --quiet monostack-web 2>/dev/null \
        || systemctl is-active --quiet monostack-web 2>/dev/null; then
      systemctl disable --now monostack-web >/dev/null
      say "web console: systemctl disable --now monostack-web"
      changed=1
    fi
  elif alive "$pidfile"; then
    say "web console: stopping it (pid $(cat "$pidfile"))"
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 100); do alive "$pidfile" || break; sleep 0.1; done
    changed=1
  fi
  rm -f "$pidfile" "$WEB_RUN/server.key"
}

# One line for the summary: where the console is, and who runs it; or that it is off.
web_console_summary() {
  local listen
  listen=$(web_recorded_listen)
  if [ -z "$listen" ]; then
    echo "off (bash packaging/install.sh --web [HOST:PORT] enables it)"
  elif web_up "$listen"; then
    echo "$(web_url "$listen") — ${WEB_HOW:-up}; log in as in the TUI"
  else
    echo "NOT answering on $listen (${WEB_HOW:-enabled earlier}); see monostack status"
  fi
}
