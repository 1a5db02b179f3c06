# Shared by the bench trace scripts (ack-trace, idle-trace, tail-trace, gc-ab, gc-phases; issue 15): uprobes on a
# Native AOT binary's functions, found in its .dbg symbols, recorded in a private tracefs instance that is removed, with
# every probe, when the script exits. Source it, then:
#
#   uprobes_init NAME                 tracefs mounted, the instance $UPROBES_INSTANCE named NAME<pid>, cleanup on EXIT
#   uprobes_binary PATH               the binary PATH runs (a script that execs vistarad is followed), with PATH.dbg beside it
#   uprobes_copy PATH DIR             the published directory of PATH copied to DIR (so no other process running the same
#                                     file is probed); prints the copy's binary
#   uprobe_at KIND NAME BIN ADDR [FETCH]    one probe (KIND p: entry, r: return) at ADDR (0x…) of BIN
#   uprobe_cxx KIND NAME BIN 'Demangled::name(' [FETCH]   at a runtime (C++) function, by its demangled name; fails if absent
#   uprobe_sym KIND NAME SYMFILE SYMBOL [BIN] [FETCH]     at a symbol by its exact name in SYMFILE (BIN: the file probed,
#                                     SYMFILE by default); when SYMFILE has no such symbol, says so and skips it
#   uprobe_gc_pauses BIN              susp_in / rest_out: GCToEEInterface::SuspendEE (entry) to RestartEE (return) is one pause
#   uprobes_start BUFFER_KB           the instance made (mono clock, tgid recorded) and every probe enabled; tracing stays off
#
# Managed code gets entry probes only: a return probe replaces the return address, which the runtime's stack walks (GC,
# exceptions) cannot read. The text segment of a published binary starts at file offset = address (readelf -lW), so a
# symbol's address is its offset in the file.

UPROBES_TRACEFS=/sys/kernel/tracing
UPROBES_EVENTS=()

uprobes_init() {
  [[ -e $UPROBES_TRACEFS/uprobe_events ]] || mount -t tracefs nodev $UPROBES_TRACEFS
  UPROBES_GROUP=$1$$
  UPROBES_INSTANCE=$UPROBES_TRACEFS/instances/$1$$
  UPROBES_NAME=$1
  trap uprobes_cleanup EXIT
}

uprobes_cleanup() {
  local e
  echo 0 > "$UPROBES_INSTANCE/tracing_on" 2>/dev/null || true
  for e in "${UPROBES_EVENTS[@]}"; do echo 0 > "$UPROBES_INSTANCE/events/$UPROBES_GROUP/$e/enable" 2>/dev/null || true; done # an instance using a probe keeps it
  rmdir "$UPROBES_INSTANCE" 2>/dev/null || true
  for e in "${UPROBES_EVENTS[@]}"; do echo "-:$UPROBES_GROUP/$e" >> $UPROBES_TRACEFS/uprobe_events 2>/dev/null || true; done
}

uprobes_binary() {
  local bin; bin=$(readlink -f "$1")
  [[ $(head -c2 "$bin") == '#!' ]] && bin=$(grep -o '/[^ ]*vistarad' "$bin" | tail -1)
  [[ -f $bin.dbg ]] || { echo "$UPROBES_NAME: no $bin.dbg (the Native AOT publish's symbols)" >&2; return 1; }
  echo "$bin"
}

uprobes_copy() {
  mkdir -p "$2"
  cp -r "$(dirname "$(readlink -f "$1")")/." "$2/"
  local bin; bin=$(cd "$2" && pwd)/$(basename "$1")
  [[ -f $bin.dbg ]] || { echo "$UPROBES_NAME: no $bin.dbg (the Native AOT publish's symbols)" >&2; return 1; }
  echo "$bin"
}

uprobe_at() {
  echo "$1:$UPROBES_GROUP/$2 $3:$4 ${5:-}" >> $UPROBES_TRACEFS/uprobe_events
  UPROBES_EVENTS+=("$2")
}

# The address of a runtime function by its demangled name (nm -C), as 0x…; nothing (and status 1) when absent.
uprobe_cxx_addr() {
  local a; a=$(nm -C "$1.dbg" | grep -F " $2" | head -1 | cut -d' ' -f1)
  [[ -n $a ]] && printf '0x%x' $((16#$a))
}

uprobe_cxx() {
  local a; a=$(uprobe_cxx_addr "$3" "$4") || { echo "$UPROBES_NAME: no $4 in $3.dbg" >&2; return 1; }
  uprobe_at "$1" "$2" "$3" "$a" "${5:-}"
}

uprobe_sym() {
  local a; a=$(nm "$3" 2>/dev/null | grep -E " [tT] $4\$" | head -1 | cut -d' ' -f1) || true
  [[ -n $a ]] || { echo "$UPROBES_NAME: no $4, not traced" >&2; return 0; }
  uprobe_at "$1" "$2" "${5:-$3}" "0x$a" "${6:-}"
}

uprobe_gc_pauses() {
  uprobe_cxx p susp_in "$1" 'GCToEEInterface::SuspendEE('
  uprobe_cxx r rest_out "$1" 'GCToEEInterface::RestartEE('
}

uprobes_start() {
  local e
  mkdir "$UPROBES_INSTANCE"
  echo mono > "$UPROBES_INSTANCE/trace_clock"
  echo 1 > "$UPROBES_INSTANCE/options/record-tgid"
  echo "$1" > "$UPROBES_INSTANCE/buffer_size_kb"
  for e in "${UPROBES_EVENTS[@]}"; do echo 1 > "$UPROBES_INSTANCE/events/$UPROBES_GROUP/$e/enable"; done
}
