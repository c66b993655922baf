// SPDX-License-Identifier: GPL-3.0-or-later
// A stand-in for `mmlab train` that speaks the progress protocol, so the run manager's state
// machine is tested against a real child process. Its behaviour is chosen by the run name's
// first word (`--run MODE-…`); it appends "start NAME" / "end NAME" to $FAKE_LOG.
#pragma once

#include <QFile>
#include <QString>
#include <filesystem>

namespace mmlab::test {

inline constexpr char kFakeTrainer[] = R"SH(#!/bin/sh
name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --run) name="$2"; shift ;;
    --resume) name="resume-$2"; shift ;;
  esac
  shift
done
mode=${name%%-*}
rid=7
if [ -n "$FAKE_ID_FROM_NAME" ]; then rid=$(( $(printf %s "$name" | cksum | cut -d' ' -f1) % 1000 + 100 )); fi
log() { [ -n "$FAKE_LOG" ] && echo "$1 $name" >> "$FAKE_LOG"; }
status() { printf '{"event":"status","run_id":%s,"wall":%s,"status":"%s","step":%s,"total_steps":%s%s}\n' "$rid" "$1" "$2" "$3" "$4" "$5"; }
step() { printf '{"event":"step","run_id":%s,"wall":%s.5,"step":%s,"tokens":%s,"total_steps":%s,"metrics":{"loss":%s,"lr":0.001}}\n' "$rid" "$1" "$1" $(( $1 * 256 )) "$2" "$3"; }
stop=0
trap 'stop=1' TERM
log start
case "$mode" in
  prep)
    printf '{"event":"log","run_id":0,"wall":0,"level":"info","message":"Preparing data (default, byte)"}\n'
    sleep 0.2
    status 0 running 0 3
    for i in 1 2 3; do sleep 0.05; step $i 3 "$(( 10 - i ))"; done
    sleep 0.5
    status 2 finished 3 3
    log end; exit 0 ;;
  slowfinish)
    status 0 running 0 20
    for i in $(seq 1 20); do sleep 0.05; step $i 20 "$(( 30 - i ))"; done
    status 2 finished 20 20
    log end; exit 0 ;;
  slow)
    status 0 running 0 1000
    i=0
    while [ $stop -eq 0 ] && [ $i -lt 400 ]; do i=$(( i + 1 )); step $i 1000 5; sleep 0.02; done
    status 9 stopped $i 1000
    log end; exit 0 ;;
  hang)
    trap '' TERM
    status 0 running 0 10
    while true; do sleep 0.05; done ;;
  fail)
    status 0 running 0 10
    echo "loading config" >&2
    status 0 failed 0 10 ',"message":"$.runs[0].model.d_model: must be > 0, got -3"'
    log end; exit 3 ;;
  usage)
    echo "mmlab train: unknown option --bogus" >&2
    echo "Run 'mmlab train --help' for usage." >&2
    log end; exit 2 ;;
  diverge)
    status 0 running 0 10
    printf '{"event":"step","run_id":7,"wall":1,"step":1,"tokens":256,"metrics":{"loss":null}}\n'
    status 1 diverged 1 10 ',"message":"loss is NaN at step 1"'
    log end; exit 5 ;;
  garbage)
    echo "Loading tokenizer..."
    printf '{"event":"step","run_id":7,"step":\n'
    step 1 1 4.5
    printf 'not json at all\n'
    status 1 finished 1 1
    log end; exit 0 ;;
  finish|resume|*)
    status 0 running 0 3
    for i in 1 2 3; do sleep 0.05; step $i 3 "$(( 10 - i ))"; done
    status 2 finished 3 3
    log end; exit 0 ;;
esac
)SH";

/// Writes the fake trainer into `dir` and returns its path.
inline QString write_fake_trainer(const std::filesystem::path& dir) {
  const QString path = QString::fromStdString((dir / "fake-mmlab.sh").string());
  QFile f(path);
  f.open(QIODevice::WriteOnly);
  f.write(kFakeTrainer);
  f.close();
  f.setPermissions(QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
  return path;
}

}  // namespace mmlab::test
