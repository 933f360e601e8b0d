#!/bin/bash
# Start a throwaway single-node Ceph cluster (1 monitor, 1 in-memory memstore OSD, no manager,
# auth=none) plus a RADOS Gateway, all on 127.0.0.1, from fresh data dirs, and create the
# registry's S3 users:
#   pipeline           the registry's own role (creates and owns the bucket)
#   reader             a downstream app: reads registry/ and reports/ only (by bucket policy)
#   council-<region>   one per region of config/regions.yaml, lower-cased (council-sh, ...)
# Their keys are random per start and written to $CEPH_BASE/credentials.json (mode 600).
#
# Debian packages: ceph-mon ceph-osd radosgw ceph-common curl. Needs no systemd and no root
# beyond what writing $CEPH_BASE needs.
#
# Environment (all optional):
#   CEPH_BASE        state folder (default /tmp/yrd-ceph-rgw); one cluster per folder
#   MON_PORT         monitor msgr2 port (default 16790)
#   RGW_PORT         S3 endpoint port (default 17480)
#   OSD_PORT_MIN/MAX ports the OSD binds (Ceph's default is 6800-7300; give each concurrent
#                    cluster its own range so that two test sessions never clash)
#   MEMSTORE_BYTES   capacity of the in-RAM object store (default 1 GiB)
#   REGIONS          region codes (default: the keys of config/regions.yaml)
#   WATCH_PID        stop the cluster when this process exits (a test session's PID)
#   START_TIMEOUT    bound for each wait loop, seconds (default 60)
#   VERBOSE=1        print the time of each step
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
BASE=${CEPH_BASE:-/tmp/yrd-ceph-rgw}
export CEPH_BASE=$BASE
RUN=$BASE/run
MON_PORT=${MON_PORT:-16790}
RGW_PORT=${RGW_PORT:-17480}
OSD_PORT_MIN=${OSD_PORT_MIN:-6800}
OSD_PORT_MAX=${OSD_PORT_MAX:-7300}
MEM_BYTES=${MEMSTORE_BYTES:-1073741824}
TIMEOUT=${START_TIMEOUT:-60}
CONF=$RUN/ceph.conf
CREDS=$BASE/credentials.json
T0=$(date +%s.%N)
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }
ts() { [ -z "${VERBOSE:-}" ] || echo "  +$(el)s $*" >&2; }

regions_from_config() {  # the top-level keys under "regions:" in config/regions.yaml
  awk '/^regions:/ {in_r=1; next} /^[^ #]/ {in_r=0}
       in_r && /^  [A-Za-z0-9_-]+:/ {sub(/^  /, ""); sub(/:.*/, ""); print}' \
    "$PROJECT/config/regions.yaml"
}
REGIONS=${REGIONS:-$(regions_from_config | tr '\n' ' ')}
[ -n "${REGIONS// /}" ] || { echo "no regions found in $PROJECT/config/regions.yaml" >&2; exit 1; }

"$HERE/stop-rgw.sh" >/dev/null 2>&1 || true
rm -rf "$RUN" "$CREDS"
mkdir -p "$RUN"/{mon,osd,rgw,log,run,pids}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "start-rgw FAILED rc=$rc, logs kept in $RUN/log" >&2;
      KEEP_DATA=1 "$HERE/stop-rgw.sh" >/dev/null 2>&1; fi' EXIT
FSID=$(cat /proc/sys/kernel/random/uuid)

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
public network = 127.0.0.1/32
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = $OSD_PORT_MIN
ms bind port max = $OSD_PORT_MAX
auth cluster required = none
auth service required = none
auth client required = none
# radosgw otherwise insists on 'secure' mode to the mon, which auth=none can't do
ms mon client mode = crc
ms client mode = crc
keyring = $RUN/keyring
run dir = $RUN/run
admin socket = $RUN/run/\$name.asok
log file = $RUN/log/\$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $RUN/mon
mon cluster log file = $RUN/log/cluster.log
# default 1 s per map change; rgw's ~15 pool commands made start-up take ~12 s
paxos propose interval = 0.05
[osd]
osd data = $RUN/osd
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $RUN/rgw
EOF

wait_for() {  # wait_for <desc> <cmd...>   (bounded by $TIMEOUT)
  local desc=$1; shift; local end=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    for f in "$RUN"/pids/*; do [ -e "$f" ] || continue
      kill -0 "$(cat "$f")" 2>/dev/null || { echo "$(basename "$f") died; see $RUN/log" >&2; exit 1; }
    done
    if [ "$(date +%s)" -ge "$end" ]; then echo "TIMEOUT waiting for $desc" >&2; exit 1; fi
    sleep 0.2
  done
}
C() { timeout 15 ceph -c "$CONF" --connect-timeout 10 "$@"; }

# --- mon ---
ceph-authtool --create-keyring "$RUN/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$RUN/monmap" >/dev/null
ceph-mon -c "$CONF" -i a --mkfs --monmap "$RUN/monmap" --keyring "$RUN/keyring"
ceph-mon -c "$CONF" -i a -f </dev/null >>"$RUN/log/mon.stdout" 2>&1 &
echo $! >"$RUN/pids/mon"
wait_for "mon" C mon stat
ts mon up

# --- osd (memstore) ---
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(C osd new "$OSD_UUID")
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >>"$RUN/log/osd-mkfs.log" 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID" -f </dev/null >>"$RUN/log/osd.stdout" 2>&1 &
echo $! >"$RUN/pids/osd"
osd_up() { C osd dump -f json | grep '"up":1' >/dev/null; }
wait_for "osd up" osd_up
ts osd up

# --- radosgw (creates its pools + default zone on first start) ---
radosgw -c "$CONF" -n client.rgw.a -f </dev/null >>"$RUN/log/rgw.stdout" 2>&1 &
echo $! >"$RUN/pids/rgw"
rgw_up() { curl -sf "http://127.0.0.1:$RGW_PORT/" | grep ListAllMyBucketsResult >/dev/null; }
wait_for "rgw http" rgw_up
ts rgw up

# --- S3 users, with random keys ---
rand() { tr -dc "$1" </dev/urandom | head -c "$2" || true; }
users=(pipeline reader)
for r in $REGIONS; do users+=("council-$(echo "$r" | tr '[:upper:]' '[:lower:]')"); done
umask 077
{
  printf '{\n  "endpoint": "http://127.0.0.1:%s",\n  "users": {' "$RGW_PORT"
  sep=""
  for u in "${users[@]}"; do
    access=$(rand 'A-Z0-9' 20); secret=$(rand 'A-Za-z0-9' 40)
    timeout 30 radosgw-admin -c "$CONF" user create --uid "$u" --display-name "$u" \
      --access-key "$access" --secret-key "$secret" >/dev/null
    printf '%s\n    "%s": {"access_key": "%s", "secret_key": "%s"}' "$sep" "$u" "$access" "$secret"
    sep=","
  done
  printf '\n  }\n}\n'
} >"$CREDS.tmp"
mv "$CREDS.tmp" "$CREDS"
ts users created

if [ -n "${WATCH_PID:-}" ]; then  # stop the cluster when the watched process goes away
  nohup bash -c 'while kill -0 "$0" 2>/dev/null && [ -d "$1/pids" ]; do sleep 1; done
                 CEPH_BASE="$2" "$3/stop-rgw.sh"' "$WATCH_PID" "$RUN" "$BASE" "$HERE" \
    </dev/null >/dev/null 2>&1 &
fi

echo "READY endpoint=http://127.0.0.1:$RGW_PORT credentials=$CREDS startup_s=$(el)" \
  "pids: mon=$(cat "$RUN/pids/mon") osd=$(cat "$RUN/pids/osd") rgw=$(cat "$RUN/pids/rgw")"
