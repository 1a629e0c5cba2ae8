# Shared by the GPU scripts (source it after setting OUT, WORK and TAIL):
#   stage NAME SECONDS COMMAND...   runs COMMAND with a time limit, its output in WORK/NAME.log,
#   prints the exit status, the time taken and the log's last TAIL lines, then refreshes
#   OUT/results.tgz: benchmarks/results plus the small files (logs, JSON, PNG) in WORK.
stage() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s"
    tail -n "${TAIL:-4}" "$WORK/$name.log"
    tar -czf "$OUT/results.tgz" benchmarks/results -C "$WORK" \
        $(cd "$WORK" && ls ./*.log ./*.json ./*.png 2>/dev/null)
}
