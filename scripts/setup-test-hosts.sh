#!/bin/sh
# Build (or remove) a small test cluster on this machine, the same layout the rmpirun tests use:
# network namespaces joined by veth pairs to a bridge in its own namespace, one real sshd per host,
# a generated client key, a pre-filled known_hosts and an ssh client config touching no user file.
#
#   sudo scripts/setup-test-hosts.sh up [HOSTS] [TAG]   # default 4 hosts, subnet 10.213.200.0/24
#   sudo scripts/setup-test-hosts.sh down [TAG]
#
# Then, as printed by `up`:
#   sudo ip netns exec rmpi-c200-head env RMPI_SSH="ssh -F /tmp/rmpi-c200/ssh_config" \
#       target/release/rmpirun -n 32 --hostfile /tmp/rmpi-c200/hostfile ./app
#
# h4 runs its sshd on port 2222 (its hostfile line says `port=2222`). Needs root, iproute2,
# openssh-server, openssh-client.
set -eu

cmd=${1:-}
case "$cmd" in
up) hosts=${2:-4}; tag=${3:-200} ;;
down) tag=${2:-200} ;;
*) echo "usage: $0 up [HOSTS] [TAG] | down [TAG]" >&2; exit 2 ;;
esac
case "$tag" in *[!0-9]* | '') echo "TAG must be a number 1..254" >&2; exit 2 ;; esac
prefix="rmpi-c$tag"
dir="/tmp/$prefix"

teardown() {
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns"
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$dir"
}

if [ "$cmd" = down ]; then
    teardown
    echo "removed $prefix"
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
teardown
mkdir -p "$dir" /run/sshd
chmod 700 "$dir"
br="$prefix-br"
head="$prefix-head"
ip netns add "$br"
ip -n "$br" link set lo up
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up

member() { # NS VETH ADDR
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$br" link add "$2" type veth peer name eth0 netns "$1"
    ip -n "$br" link set "$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
}

member "$head" vhead "10.213.$tag.1"
i=1
while [ "$i" -le "$hosts" ]; do
    member "$prefix-h$i" "vh$i" "10.213.$tag.$((10 + i))"
    i=$((i + 1))
done

# /etc/hosts of every namespace: every name, and its own name on 127.0.0.1.
all="head 10.213.$tag.1"
i=1
while [ "$i" -le "$hosts" ]; do all="$all h$i 10.213.$tag.$((10 + i))"; i=$((i + 1)); done
for own in head $(i=1; while [ "$i" -le "$hosts" ]; do echo "h$i"; i=$((i + 1)); done); do
    mkdir -p "/etc/netns/$prefix-$own"
    {
        echo "127.0.0.1 localhost $own"
        set -- $all
        while [ $# -gt 0 ]; do [ "$1" = "$own" ] || echo "$2 $1"; shift 2; done
    } > "/etc/netns/$prefix-$own/hosts"
done

ssh-keygen -q -t ed25519 -N '' -C client -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
: > "$dir/known_hosts"
: > "$dir/hostfile"
i=1
while [ "$i" -le "$hosts" ]; do
    name="h$i"
    addr="10.213.$tag.$((10 + i))"
    port=22
    [ "$i" = 4 ] && port=2222
    ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/host_key_$name"
    if [ "$port" = 22 ]; then
        echo "$name,$addr $(cut -d' ' -f1,2 "$dir/host_key_$name.pub")" >> "$dir/known_hosts"
        echo "$name slots=8" >> "$dir/hostfile"
    else
        echo "[$name]:$port,[$addr]:$port $(cut -d' ' -f1,2 "$dir/host_key_$name.pub")" >> "$dir/known_hosts"
        echo "$name slots=8 port=$port" >> "$dir/hostfile"
    fi
    cat > "$dir/sshd_config_$name" <<EOF
Port $port
ListenAddress 0.0.0.0
HostKey $dir/host_key_$name
PidFile $dir/sshd_$name.pid
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $dir/authorized_keys
MaxStartups 10:30:100
MaxSessions 10
PrintMotd no
UseDNS no
EOF
    ip netns exec "$prefix-$name" /usr/sbin/sshd -f "$dir/sshd_config_$name" -E "$dir/sshd_$name.log"
    i=$((i + 1))
done
cat > "$dir/ssh_config" <<EOF
Host *
  User root
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  ControlMaster no
  ControlPath none
  CheckHostIP no
EOF
echo "cluster $prefix: $hosts hosts on 10.213.$tag.0/24, files in $dir"
echo "run: ip netns exec $head env RMPI_SSH=\"ssh -F $dir/ssh_config\" RMPI_AGENT_CACHE=$dir/cache \\"
echo "       rmpirun -n $((hosts * 8)) --hostfile $dir/hostfile ./app"
echo "remove: $0 down $tag"
