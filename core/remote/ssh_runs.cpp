// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/ssh_runs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/remote/remote_shell.h"
#include "core/remote/slurm_runs.h"
#include "core/remote/ssh.h"
#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::remote {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json to_json(const Launch& l) {
  return {{"tag", l.tag},
          {"host", l.host},
          {"run_name", l.run_name},
          {"pid", l.pid},
          {"job_id", l.job_id},
          {"db_file", l.db_file},
          {"remote_run_id", l.remote_run_id},
          {"uuid", l.uuid},
          {"resume", l.resume},
          {"experiment", l.experiment},
          {"steps", l.steps},
          {"started_nothing", l.started_nothing},
          {"synced_full", l.synced_full},
          {"ended", l.ended},
          {"reachable", l.reachable},
          {"message", l.message},
          {"last_contact", l.last_contact}};
}

Launch from_json(const json& j) {
  Launch l;
  l.tag = j.value("tag", "");
  l.host = j.value("host", "");
  l.run_name = j.value("run_name", "");
  l.pid = j.value("pid", int64_t{0});
  l.job_id = j.value("job_id", int64_t{0});
  l.db_file = j.value("db_file", std::string("results.sqlite"));
  l.remote_run_id = j.value("remote_run_id", int64_t{0});
  l.uuid = j.value("uuid", "");
  l.resume = j.value("resume", false);
  l.experiment = j.value("experiment", "");
  l.steps = j.value("steps", int64_t{0});
  l.started_nothing = j.value("started_nothing", false);
  l.synced_full = j.value("synced_full", false);
  l.ended = j.value("ended", false);
  l.reachable = j.value("reachable", true);
  l.message = j.value("message", "");
  l.last_contact = j.value("last_contact", 0.0);
  return l;
}

void mark_unreachable(const Host& host, Launch& launch, const ProcessOutput& out) {
  launch.reachable = false;
  launch.message = unreachable_sentence(host, out);
}

void mark_reachable(Launch& launch) {
  launch.reachable = true;
  launch.message.clear();
  launch.last_contact = now();
}

}  // namespace

// --- LaunchBook ----------------------------------------------------------------------------------

fs::path LaunchBook::path_for(const fs::path& db) {
  return fs::path(db.string() + ".remote.json");
}

LaunchBook LaunchBook::load(const fs::path& db) {
  LaunchBook book;
  book.path_ = path_for(db);
  std::error_code ec;
  if (!fs::exists(book.path_, ec)) return book;
  try {
    json doc = json::parse(read_file(book.path_));
    for (const auto& j : doc.at("launches")) {
      book.launches_.push_back(from_json(j));
      book.known_[book.launches_.back().tag] = to_json(book.launches_.back());
    }
  } catch (const json::exception&) {
    throw UserError("The list of remote runs " + book.path_.string() + " is damaged.",
                    "Delete it; `mmlab remote` then forgets those runs (their rows synced so far "
                    "stay in the database).");
  }
  return book;
}

void LaunchBook::save() const {
  // Several processes keep the book of one database (a follower per run, the studio's sync):
  // under a lock, the file is read again and only the entries this process changed (or added)
  // replace theirs, so what another one added or changed meanwhile is kept.
  const fs::path lock_path = path_.string() + ".lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);  // closing releases the lock
    }
  } unlock{lock};
  std::vector<Launch> merged;
  std::error_code ec;
  if (fs::exists(path_, ec)) {
    try {
      const json doc = json::parse(read_file(path_));
      for (const auto& j : doc.at("launches")) merged.push_back(from_json(j));
    } catch (const json::exception&) {
      merged.clear();  // a damaged book is replaced by what this process knows
    }
  }
  for (const auto& l : launches_) {
    const json mine = to_json(l);
    if (const auto k = known_.find(l.tag); k != known_.end() && k->second == mine) continue;
    known_[l.tag] = mine;
    auto same =
        std::find_if(merged.begin(), merged.end(), [&](const Launch& m) { return m.tag == l.tag; });
    if (same != merged.end()) {
      *same = l;
    } else {
      merged.push_back(l);
    }
  }
  json doc = {{"launches", json::array()}};
  for (const auto& l : merged) doc["launches"].push_back(to_json(l));
  write_file_atomically(path_, doc.dump(2) + "\n");
}

Launch* LaunchBook::find(const std::string& key) {
  for (auto it = launches_.rbegin(); it != launches_.rend(); ++it) {
    if (it->tag == key || (!key.empty() && it->uuid == key)) return &*it;
  }
  return nullptr;
}

std::map<std::string, std::string> LaunchBook::unreachable_runs() const {
  std::map<std::string, std::string> away;
  for (const Launch& l : launches_) {  // oldest first: the newest start of a run decides
    if (l.uuid.empty()) continue;
    if (l.reachable) {
      away.erase(l.uuid);
    } else {
      away[l.uuid] = l.message;
    }
  }
  return away;
}

std::string shown_status(const store::RunRow& run,
                         const std::map<std::string, std::string>& unreachable_runs) {
  if (!store::is_terminal(run.status) && unreachable_runs.count(run.uuid)) return "unreachable";
  return std::string(store::to_string(run.effective_status));
}

// --- the host side -------------------------------------------------------------------------------

HostCheck check_host(const Host& host) {
  HostCheck check;
  if (host.kind == HostKind::kLocal) {
    check.ok = true;
    return check;
  }
  const std::string script =
      std::string(host.kind == HostKind::kSlurm
                      ? "command -v sbatch >/dev/null 2>&1 || { echo slurm-missing; exit 0; }; "
                      : "") +
      "command -v " + mmlab_word(host) + " >/dev/null 2>&1 || { echo mmlab-missing; exit 0; }; " +
      "mkdir -p " + remote_path(host) + " 2>/dev/null && [ -w " + remote_path(host) +
      " ] || { echo folder-unwritable; exit 0; }; " + mmlab_word(host) + " info";
  const ProcessOutput out = run_on_host(host, script);
  if (unreachable(out) || out.exit_code == 127) {
    check.problem = unreachable_sentence(host, out);
    check.unreachable = unreachable(out);
    return check;
  }
  const std::string answer = last_line(out.out);
  const std::string where = "The host " + host.name + " (" + host.target() + ")";
  if (answer == "slurm-missing") {
    check.problem = where + " has no `sbatch`. Give the cluster's login host, where the Slurm " +
                    "commands are installed.";
    return check;
  }
  if (answer == "mmlab-missing") {
    check.problem = where + " has no `" + host.mmlab +
                    "`. Build mmlab there with scripts/setup and give its path with "
                    "`mmlab hosts add … --mmlab PATH`.";
    return check;
  }
  if (answer == "folder-unwritable") {
    check.problem = where + " cannot write its results folder " + host.dir +
                    ". Give a folder the remote user can write with --dir.";
    return check;
  }
  try {
    json info = json::parse(answer);
    check.version = info.at("version").get<std::string>();
    check.schema = info.at("schema").get<int>();
  } catch (const json::exception&) {
    check.problem = where + " answered `" + answer + "` instead of mmlab's version (`" +
                    host.mmlab + " info`). Check that --mmlab names the mmlab program there.";
    return check;
  }
  const int ours = store::ResultsStore::schema_version();
  if (check.schema != ours) {
    check.problem = where + " has mmlab " + check.version + " with results schema " +
                    std::to_string(check.schema) + ", this one has schema " + std::to_string(ours) +
                    ". Update both to the same mmlab revision " +
                    "(scripts/setup there) and try again.";
    return check;
  }
  if (host.kind == HostKind::kSlurm) {
    check.problem = slurm_refusal(host, &check.unreachable);
    if (!check.problem.empty()) return check;
  }
  check.ok = true;
  return check;
}

Launch start_on_host(const Host& host, const LaunchRequest& request) {
  if (host.kind == HostKind::kLocal) {
    throw UserError("The host local runs its trainers as child processes, not over ssh.",
                    "Use `mmlab train` for local runs.");
  }
  const bool slurm = host.kind == HostKind::kSlurm;
  Launch launch;
  launch.tag = new_tag();
  launch.host = host.name;
  const std::string& tag = launch.tag;
  std::string input;
  std::string args = mmlab_word(host) + " train";
  if (!request.resume_uuid.empty()) {
    launch.resume = true;
    launch.uuid = request.resume_uuid;
    launch.run_name = "resume " + request.resume_uuid;
    if (!request.resume_db_file.empty()) launch.db_file = request.resume_db_file;
    args += " --resume " + shell_quote(request.resume_uuid);
  } else {
    if (request.experiment_on_host.empty()) {
      input = read_file(request.experiment_file);
      launch.experiment = "launches/" + tag + ".json";
    } else {
      launch.experiment = request.experiment_on_host;
    }
    launch.run_name = request.run_name;
    launch.steps = request.steps;
    // A Slurm job has a database of its own: one writer, read once the job has ended.
    if (slurm) launch.db_file = "launches/" + tag + ".sqlite";
    args += " " + shell_quote(launch.experiment) + " --run " + shell_quote(request.run_name) +
            " --checkpoint-dir checkpoints";
    if (!request.uuid.empty()) {
      args += " --uuid " + shell_quote(request.uuid);
      launch.uuid = request.uuid;  // the synced rows land on the row queued for it
    }
    if (request.steps > 0) args += " --steps " + std::to_string(request.steps);
  }
  if (!request.device.empty()) args += " --device " + shell_quote(request.device);
  args += " --db " + shell_quote(launch.db_file) + " --progress jsonl";
  if (slurm) {
    launch.job_id = submit_to_slurm(host, tag, launch.run_name, args, input);
    mark_reachable(launch);
    return launch;
  }
  const std::string d = remote_path(host);
  const std::string l = "launches/" + tag;
  // setsid + nohup: the trainer leaves the SSH session, so the connection (or the studio)
  // going away sends it no SIGHUP. Its pid is written by the shell that then becomes it (exec),
  // and MMLAB_LAUNCH in its environment lets stop_on_host() tell it from a reused pid.
  std::string script = "set -e; mkdir -p " + d + "/launches " + d + "/checkpoints; ";
  if (!input.empty()) script += "cat > " + d + "/" + l + ".json; ";
  script += "cd " + d + "; MMLAB_LAUNCH=" + tag + " setsid nohup sh -c 'echo $$ > " + l +
            ".pid.tmp && mv " + l + ".pid.tmp " + l + ".pid && exec \"$@\" > " + l + ".jsonl 2> " +
            l + ".err' sh " + args +
            " < /dev/null > /dev/null 2>&1 & "
            "i=0; while [ ! -s " +
            l + ".pid ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; cat " + l + ".pid";
  const ProcessOutput out = run_on_host(host, script, input);
  if (unreachable(out)) throw unreachable_error(host, out);
  const std::string pid = last_line(out.out);
  if (out.exit_code != 0 || pid.empty() || pid.find_first_not_of("0123456789") != pid.npos) {
    std::string why = last_line(out.err);
    throw UserError(
        "Starting the run on the host " + host.name + " failed" +
            (why.empty() ? "" : " (" + why + ")") + ".",
        "Check `mmlab hosts check " + host.name + "` and the folder " + host.dir + " there.");
  }
  launch.pid = std::stoll(pid);
  mark_reachable(launch);
  return launch;
}

std::vector<std::string> follow_argv(const Host& host, const Launch& launch, int64_t offset) {
  if (host.kind == HostKind::kSlurm)
    return ssh_argv(host, slurm_follow_command(host, launch, offset));
  const std::string log = remote_path(host, "/launches/" + launch.tag + ".jsonl");
  return ssh_argv(host, "tail --pid=" + std::to_string(launch.pid) + " -c +" +
                            std::to_string(offset + 1) + " -F " + log + " 2>/dev/null");
}

bool stop_on_host(const Host& host, const Launch& launch) {
  if (host.kind == HostKind::kSlurm) return cancel_on_slurm(host, launch);
  const std::string p = std::to_string(launch.pid);
  const ProcessOutput out =
      run_on_host(host, "grep -qa MMLAB_LAUNCH=" + launch.tag + " /proc/" + p +
                            "/environ 2>/dev/null || exit 3; kill -TERM " + p);
  if (unreachable(out)) throw unreachable_error(host, out);
  return out.exit_code == 0;
}

std::optional<SyncResult> sync_from_host(const Host& host, Launch& launch,
                                         store::ResultsStore& local) {
  const bool full = launch.resume && !launch.synced_full;
  int64_t after = -1;  // everything, step 0 included (the data's figures are recorded there)
  if (!full && !launch.uuid.empty()) {
    // One step back: a batch of the trainer may have committed only some metrics of its last
    // step; they are fetched again and replace themselves.
    after = std::max<int64_t>(-1, last_synced_step(local, launch.uuid) - 1);
  }
  const std::string id = std::to_string(launch.remote_run_id);
  // A Slurm job's database is read once the job has left the queue: its writer may be another
  // node, and SQLite's shared-memory index must never be shared across machines.
  const std::string still_queued = host.kind == HostKind::kSlurm
                                       ? "[ -z \"$(squeue -h -j " + std::to_string(launch.job_id) +
                                             " -o %i 2>/dev/null)\" ] || exit 0; "
                                       : "";
  const std::string script =
      "cd " + remote_path(host) + " || exit 0; " + still_queued + "id=" + id +
      "; if [ \"$id\" = 0 ]; then id=$(grep -m 1 -o '\"run_id\":[1-9][0-9]*' launches/" +
      launch.tag +
      ".jsonl 2>/dev/null | cut -d: -f2); fi; "
      "[ -n \"$id\" ] || exit 0; exec " +
      mmlab_word(host) + " remote snapshot --db " + shell_quote(launch.db_file) +
      " --run \"$id\" --after " + std::to_string(after);
  const ProcessOutput out = run_on_host(host, script);
  if (unreachable(out)) {
    mark_unreachable(host, launch, out);
    return std::nullopt;
  }
  mark_reachable(launch);
  if (out.exit_code != 0) {
    std::string why = last_line(out.err);
    if (why.rfind("mmlab: ", 0) == 0) why = why.substr(7);
    throw UserError("Fetching the run's rows from the host " + host.name + " failed: " + why, "");
  }
  if (out.out.empty()) return std::nullopt;  // the trainer has not created its run yet
  const fs::path tmp =
      local.path().parent_path() / (".sync-" + launch.tag + "-" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      for (const char* s : {"", "-wal", "-shm"}) fs::remove(p.string() + s, ec);
    }
  } cleanup{tmp};
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(out.out.data(), static_cast<std::streamsize>(out.out.size()));
    if (!f.flush()) {
      throw ResourceError(
          "The run's rows from " + host.name + " could not be written to " + tmp.string() + ".",
          "Free some disk space there.");
    }
  }
  {
    store::OpenOptions ro;
    ro.mode = store::Database::Mode::kReadOnly;
    store::ResultsStore snap(tmp, ro);
    auto runs = snap.reader().list_runs();
    if (!runs.empty()) launch.remote_run_id = runs[0].id;
  }
  SyncResult result = merge_run_snapshot(local, tmp, full);
  launch.uuid = result.uuid;
  launch.ended = store::is_terminal(local.reader().get_run(result.run_id).status);
  if (full) launch.synced_full = true;
  return result;
}

void write_snapshot_to_stdout(const fs::path& db, int64_t run_id, int64_t after_step) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string dir_template = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/mmlab-XXXXXX";
  if (!::mkdtemp(dir_template.data())) {
    throw UserError("No temporary folder could be made in " + dir_template + ".",
                    "Set TMPDIR to a writable folder.");
  }
  const fs::path dir = dir_template;
  // unlink/rmdir, not fs::remove_all: LibTorch 2.x exports its own, crashing copy of it
  // (pytorch issue #133437).
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      for (const char* s : {"", "-wal", "-shm", "-journal"}) {
        ::unlink((d / "snapshot.sqlite").concat(s).c_str());
      }
      ::rmdir(d.c_str());
    }
  } cleanup{dir};
  const fs::path snap = dir / "snapshot.sqlite";
  write_run_snapshot(db, run_id, snap, after_step);
  const std::string bytes = read_file(snap);
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout.flush();
}

}  // namespace mmlab::remote
