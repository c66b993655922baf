// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab remote launch|follow|stop|resume|sync|list` (runs on SSH hosts, core/remote/ssh_runs.h),
// `mmlab remote snapshot` (their remote half) and `mmlab info` (what `mmlab hosts check` asks).
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/config/experiment.h"
#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/remote/slurm_runs.h"
#include "core/remote/ssh.h"
#include "core/remote/ssh_runs.h"
#include "core/results/progress_event.h"
#include "core/store/store.h"
#include "core/train/trainer.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

using nlohmann::json;
using remote::Host;
using remote::Launch;
using remote::LaunchBook;

struct RemoteArgs {
  std::string hosts_file;
  std::string host, file, tag, progress = "jsonl", device, uuid;
  std::vector<std::string> runs, tags;
  int64_t steps = 0, from_byte = 0, run_id = 0, after = -1;
  bool follow = false;
  remote::HostList hosts() const {
    return remote::HostList::load(hosts_file.empty() ? remote::default_hosts_path()
                                                     : std::filesystem::path(hosts_file));
  }
};

Launch& find_launch(LaunchBook& book, const std::string& key, const Context& ctx) {
  Launch* l = book.find(key);
  if (!l) {
    throw UserError("No remote run `" + key + "` is known to " + ctx.db_path().string() + ".",
                    "`mmlab remote list` shows them (by tag, or by the run's uuid).");
  }
  return *l;
}

void require_ok(const Host& host) {
  const remote::HostCheck check = remote::check_host(host);
  if (!check.ok)
    throw UserError(check.problem, "", check.unreachable ? kExitHostUnreachable : kExitBadInput);
}

// The exit code `mmlab train` would have given for a final status.
int exit_for(const std::string& status) {
  if (status == "finished" || status == "stopped") return kExitOk;
  if (status == "diverged") return kExitDiverged;
  return kExitFailure;
}

// A sync that fails while following is said once and tried again later: the stream goes on.
void sync_while_following(const Host& host, Launch& launch, store::ResultsStore& local,
                          LaunchBook& book, std::string& last_error) {
  try {
    remote::sync_from_host(host, launch, local);
    last_error.clear();
  } catch (const UserError& e) {
    if (last_error != e.what()) std::cerr << "mmlab: " << e.what() << "\n";
    last_error = e.what();
  }
  book.save();
}

// Sleeps about `seconds`, waking early for a new stop request; once a stop was asked for (and
// is being acted on), a steady second.
void pause_unless_stopped(double seconds) {
  if (stop_requested()) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return;
  }
  for (int i = 0; i < static_cast<int>(seconds * 10) && !stop_requested(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// A Slurm job waits in the cluster's queue for as long as the cluster decides (no deadline here:
// a PENDING job is not lost, and only the user or Slurm ends it). While it waits, the stream says
// so once per change of its reason, as a `log` event (the studio shows it as the job's note).
// Returns when the job has left PENDING, or when `forward_stop` has cancelled it.
void wait_while_pending(const Host& host, Launch& launch, const RemoteArgs& a,
                        const std::function<void()>& forward_stop) {
  std::string said;
  double pause = 1;
  for (;;) {
    forward_stop();
    std::string state, reason;
    try {
      state = remote::slurm_job_state(host, launch, &reason);
    } catch (const UserError& e) {
      // The login host is away: the job is where it was; ask again.
      if (said != e.what()) std::cerr << "mmlab: " << e.what() << "\n";
      said = e.what();
      pause_unless_stopped(pause);
      pause = std::min(pause * 2, 30.0);
      continue;
    }
    if (state != "PENDING") return;
    const std::string text = "Slurm job " + std::to_string(launch.job_id) + " is PENDING on " +
                             host.name + (reason.empty() ? "" : " (" + reason + ")");
    if (text != said && a.progress == "jsonl") {
      ProgressEvent e;
      e.kind = EventKind::kLog;
      e.run_id = 0;  // the run has no row before its trainer starts
      e.level = "info";
      e.message = text;
      std::cout << to_line(e) << "\n" << std::flush;
    }
    said = text;
    pause_unless_stopped(pause);
    pause = std::min(pause * 2, 10.0);
  }
}

// Streams the launch's events from `offset` until the trainer has ended, re-attaching when the
// connection drops, and syncs the run's rows every few seconds and at the end.
int follow(const RemoteArgs& a, const Context& ctx, const std::string& key, int64_t offset) {
  store::ResultsStore local(ctx.db_path());
  LaunchBook book = LaunchBook::load(ctx.db_path());
  Launch& launch = find_launch(book, key, ctx);
  const Host host = a.hosts().get(launch.host);
  std::string final_status, sync_error;
  int64_t local_id = 0;  // the run's id in the local database, once synced
  if (!launch.uuid.empty()) {
    if (auto r = local.reader().find_run_by_uuid(launch.uuid)) local_id = r->id;
  }
  auto last_sync = std::chrono::steady_clock::now();
  std::chrono::seconds pause{1};
  // SIGTERM/SIGINT to this follower (the studio's stop) becomes a stop of the remote trainer;
  // the stream is followed on until the trainer has checkpointed and ended.
  bool stop_sent = false;
  auto forward_stop = [&] {
    if (!stop_requested() || stop_sent) return;
    stop_sent = true;
    try {
      if (remote::stop_on_host(host, launch)) {
        std::cerr << "mmlab: asked the trainer of " << launch.tag << " on " << host.name
                  << " to stop\n";
      }
    } catch (const UserError& e) {
      std::cerr << "mmlab: " << e.what() << "\n";
      stop_sent = false;  // tried again on the next signal or line
    }
  };
  if (host.kind == remote::HostKind::kSlurm && offset == 0) {
    wait_while_pending(host, launch, a, forward_stop);
  }
  for (;;) {
    remote::LineProcess tail(remote::follow_argv(host, launch, offset));
    std::string line;
    while (tail.read_line(line, forward_stop)) {
      forward_stop();
      offset += static_cast<int64_t>(line.size()) + 1;
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("run_id", int64_t{0}) > 0) {
        // The stream names the run by its id in the host's database; a reader here (the
        // studio) knows it by its id in this one, which the first sync gives.
        if (local_id == 0) {
          sync_while_following(host, launch, local, book, sync_error);
          last_sync = std::chrono::steady_clock::now();
          if (auto r = local.reader().find_run_by_uuid(launch.uuid)) local_id = r->id;
        }
        j["run_id"] = local_id;
        if (j.contains("db")) j["db"] = ctx.db_path().string();
        line = j.dump();
      }
      if (a.progress == "jsonl") std::cout << line << "\n" << std::flush;
      if (j.is_object() && j.value("event", "") == "status") {
        const std::string s = j.value("status", "");
        if (s != "running" && s != "queued") final_status = s;
      }
      if (std::chrono::steady_clock::now() - last_sync > std::chrono::seconds(5)) {
        sync_while_following(host, launch, local, book, sync_error);
        last_sync = std::chrono::steady_clock::now();
      }
    }
    const int rc = tail.wait();
    if (rc == 0) break;  // tail ended with the trainer
    // The connection dropped: the trainer carries on; come back where the stream was.
    launch.reachable = false;
    launch.message = remote::unreachable_sentence(host, {rc, "", tail.err()});
    book.save();
    std::cerr << "mmlab: " << launch.message << " Re-attaching in " << pause.count()
              << " s (at byte " << offset << ").\n";
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::seconds(30));
  }
  // The last rows, retried while the host is briefly away.
  for (int attempt = 0;; ++attempt) {
    remote::sync_from_host(host, launch, local);
    book.save();
    if (launch.reachable || attempt >= 5) break;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  if (!launch.reachable) throw UserError(launch.message, "");
  if (final_status.empty() && stop_sent && offset == 0) {
    // Stopped before its trainer started (a Slurm job cancelled while PENDING): nothing ran.
    // A row queued here for it (--uuid) ends stopped, or the next studio would queue it again.
    const std::string why = launch.tag + " on " + host.name +
                            " was cancelled before its trainer started; nothing was trained.";
    std::cerr << "mmlab: " << why << "\n";
    if (local_id != 0)
      local.metadata().cancel_queued_run(local_id, why, store::RunStatus::kStopped);
    launch.ended = true;
    launch.started_nothing = true;
    book.save();
    return kExitOk;
  }
  if (final_status.empty() && host.kind == remote::HostKind::kSlurm) {
    // Where Slurm ended the job without the trainer's last word (TIMEOUT, NODE_FAIL,
    // OUT_OF_MEMORY, CANCELLED by an administrator), sacct says so.
    std::string state;
    try {
      state = remote::slurm_job_state(host, launch);
    } catch (const UserError&) {
    }
    std::cerr << "mmlab: Slurm job " << launch.job_id << " of " << launch.tag << " on " << host.name
              << " ended " << (state.empty() ? "(state unknown)" : state)
              << " without a final status from its trainer; see "
              << (host.dir + "/launches/" + launch.tag + ".err") << " there. Resume it with "
              << "`mmlab remote resume " << launch.tag << "`.\n";
    return kExitFailure;
  }
  if (final_status.empty()) {
    // The stream ended without a final status: the trainer was killed. Its rows tell the rest.
    std::cerr << "mmlab: the trainer of " << launch.tag << " on " << host.name
              << " ended without a final status; its run shows as lost once its heartbeat is "
                 "stale. Resume it with `mmlab remote resume "
              << launch.tag << "`.\n";
    return kExitFailure;
  }
  return exit_for(final_status);
}

int launch_runs(const RemoteArgs& a, const Context& ctx) {
  const Host host = a.hosts().get(a.host);
  if (host.kind == remote::HostKind::kLocal) {
    throw UserError("`mmlab remote launch` starts runs on ssh:// and slurm:// hosts.",
                    "Use `mmlab train` for local runs.", kExitUsage);
  }
  const Experiment ex = load_experiment(a.file);  // a bad file is refused before any ssh
  std::vector<std::string> names;
  for (const auto& r : ex.runs) {
    bool wanted = a.runs.empty();
    for (const auto& n : a.runs) wanted = wanted || n == r.name;
    if (wanted) names.push_back(r.name);
  }
  if (names.empty()) {
    std::string all;
    for (const auto& r : ex.runs) all += (all.empty() ? "" : ", ") + r.name;
    throw UserError("No run of " + a.file + " is named as given with --run.",
                    "Its runs: " + all + ".");
  }
  if (!a.uuid.empty() && names.size() != 1) {
    throw UserError("--uuid names one run, but " + std::to_string(names.size()) + " runs of " +
                        a.file + " are selected.",
                    "Add --run NAME.", kExitUsage);
  }
  require_ok(host);
  store::ResultsStore local(ctx.db_path());  // created now, so a sync has somewhere to go
  LaunchBook book = LaunchBook::load(ctx.db_path());
  std::vector<std::string> tags;
  for (const auto& n : names) {
    remote::LaunchRequest req;
    req.experiment_file = a.file;
    req.run_name = n;
    req.uuid = a.uuid;
    req.steps = a.steps;
    req.device = a.device;
    Launch l = remote::start_on_host(host, req);
    book.launches().push_back(l);
    book.save();
    tags.push_back(l.tag);
    (a.follow ? std::cerr : std::cout) << l.tag << "\n";
  }
  if (!a.follow) return kExitOk;
  int worst = kExitOk;
  for (const auto& t : tags) {
    const int rc = follow(a, ctx, t, 0);
    if (rc != kExitOk && worst == kExitOk) worst = rc;
  }
  return worst;
}

int resume(const RemoteArgs& a, const Context& ctx) {
  LaunchBook book = LaunchBook::load(ctx.db_path());
  std::string key = a.tag;
  if (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
    // A run id of the local database (what the studio's queue knows a run by).
    store::OpenOptions ro;
    ro.mode = store::Database::Mode::kReadOnly;
    store::ResultsStore local(ctx.db_path(), ro);
    if (auto r = local.reader().find_run(std::stoll(key))) key = r->uuid;
  }
  Launch& before = find_launch(book, key, ctx);
  const Host host = a.hosts().get(before.host);
  if (before.uuid.empty()) {
    throw UserError(
        "The run of " + before.tag + " has not been synced yet, so its uuid is unknown.",
        "Run `mmlab remote sync " + before.tag + "` first.");
  }
  require_ok(host);
  remote::LaunchRequest req;
  req.device = a.device;
  if (before.started_nothing && !before.resume && !before.experiment.empty()) {
    // The host never had the run (its job was cancelled while waiting): it starts afresh from
    // the experiment copied there, under the same uuid, so its rows land on the same local row.
    req.experiment_on_host = before.experiment;
    req.run_name = before.run_name;
    req.uuid = before.uuid;
    req.steps = before.steps;
  } else {
    req.resume_uuid = before.uuid;
    req.resume_db_file = before.db_file;
  }
  Launch l = remote::start_on_host(host, req);
  l.remote_run_id = before.remote_run_id;
  book.launches().push_back(l);
  book.save();
  (a.follow ? std::cerr : std::cout) << l.tag << "\n";
  return a.follow ? follow(a, ctx, l.tag, 0) : kExitOk;
}

int stop(const RemoteArgs& a, const Context& ctx) {
  LaunchBook book = LaunchBook::load(ctx.db_path());
  Launch& l = find_launch(book, a.tag, ctx);
  const Host host = a.hosts().get(l.host);
  if (!remote::stop_on_host(host, l)) {
    throw UserError("The trainer of " + l.tag + " is not running on " + host.name + " any more.",
                    "`mmlab remote sync " + l.tag + "` brings its last rows home.");
  }
  std::cout << "sent SIGTERM to " << l.tag << " on " << host.name
            << (l.job_id ? " (job " + std::to_string(l.job_id) + ")"
                         : " (pid " + std::to_string(l.pid) + ")")
            << "\n";
  return kExitOk;
}

int sync(const RemoteArgs& a, const Context& ctx) {
  store::ResultsStore local(ctx.db_path());
  LaunchBook book = LaunchBook::load(ctx.db_path());
  const remote::HostList hosts = a.hosts();
  std::vector<Launch*> chosen;
  if (a.tags.empty()) {
    // Every start whose trainer may still have rows to bring (a named one is synced anyway).
    for (auto& l : book.launches())
      if (!l.ended) chosen.push_back(&l);
  } else {
    for (const auto& t : a.tags) chosen.push_back(&find_launch(book, t, ctx));
  }
  int rc = kExitOk;
  for (Launch* l : chosen) {
    const auto r = remote::sync_from_host(hosts.get(l->host), *l, local);
    book.save();
    if (!l->reachable) {
      std::cerr << "mmlab: " << l->message << "\n";
      rc = kExitHostUnreachable;
    } else if (r) {
      std::cout << l->tag << ": run " << r->run_id << " (" << r->uuid << ") " << r->points
                << " points written, last step " << r->last_step << "\n";
    } else {
      std::cout << l->tag << ": no rows yet\n";
    }
  }
  return rc;
}

int list(const RemoteArgs& a, const Context& ctx) {
  LaunchBook book = LaunchBook::load(ctx.db_path());
  const remote::HostList hosts = a.hosts();
  std::unique_ptr<store::ResultsStore> local;
  std::error_code ec;
  if (std::filesystem::exists(ctx.db_path(), ec)) {
    store::OpenOptions ro;
    ro.mode = store::Database::Mode::kReadOnly;
    local = std::make_unique<store::ResultsStore>(ctx.db_path(), ro);
  }
  for (const auto& l : book.launches()) {
    std::string status = "starting", run = "-";
    if (local && !l.uuid.empty()) {
      if (auto r = local->reader().find_run_by_uuid(l.uuid)) {
        status = std::string(store::to_string(r->effective_status));
        run = std::to_string(r->id) + " (" + r->name + ", step " + std::to_string(r->step) + "/" +
              std::to_string(r->total_steps) + ")";
      }
    }
    // Where Slurm has the job (PENDING while the run cannot have rows yet).
    std::string job;
    bool reachable = l.reachable;
    std::string message = l.message;
    if (l.job_id && reachable && !l.ended) {
      try {
        std::string reason;
        const std::string state = remote::slurm_job_state(hosts.get(l.host), l, &reason);
        job = "  job " + std::to_string(l.job_id) + " " + state +
              (reason.empty() ? "" : " (" + reason + ")");
        // Before its trainer starts, the run is at most a row queued here (--uuid).
        if (state == "PENDING" && (status == "starting" || status == "queued")) status = "pending";
      } catch (const UserError& e) {
        reachable = false;
        message = e.what();
      }
    }
    // What the local rows cannot know: the host is away, so the run is not lost, just unseen.
    if (!reachable && status != "finished" && status != "failed" && status != "diverged" &&
        status != "stopped") {
      status = "unreachable";
    }
    std::cout << l.tag << "  " << l.host << "  " << status << "  run " << run << job << "\n";
    if (!reachable && status == "unreachable") std::cout << "  " << message << "\n";
  }
  return kExitOk;
}

}  // namespace

void add_remote_command(CLI::App& app, Context& ctx) {
  CLI::App* info = app.add_subcommand("info", "This mmlab's version and results schema (JSON)");
  info->callback([&ctx] {
    ctx.action = [] {
      std::cout
          << json{{"version", "0.1.0"}, {"schema", store::ResultsStore::schema_version()}}.dump()
          << "\n";
      return kExitOk;
    };
  });

  auto args = std::make_shared<RemoteArgs>();
  CLI::App* rem = app.add_subcommand("remote",
                                     "Runs on SSH hosts and Slurm clusters: launch, follow, "
                                     "stop, resume, sync into the local database");
  rem->require_subcommand(1);
  rem->fallthrough();
  rem->add_option("--hosts", args->hosts_file,
                  "Hosts file (default: $XDG_CONFIG_HOME/mmlab/hosts.json)");
  add_db_option(rem, ctx);

  CLI::App* launch = rem->add_subcommand("launch", "Start runs of an experiment on an SSH host");
  launch->add_option("host", args->host, "Host name (`mmlab hosts list`)")->required();
  launch->add_option("file", args->file, "Experiment file (JSON)")->required();
  launch->add_option("--run", args->runs, "Only these runs (by name; repeatable)");
  launch->add_option("--steps", args->steps, "Override the step budget")
      ->check(CLI::PositiveNumber);
  launch->add_option("--device", args->device, "Override train.device on the host");
  launch->add_option("--uuid", args->uuid,
                     "With one --run: the run's uuid (the row queued for it in --db)");
  launch->add_flag("--follow", args->follow, "Then follow them (as `mmlab remote follow`)");
  launch->add_option("--progress", args->progress, "With --follow: jsonl | none")
      ->check(CLI::IsMember({"jsonl", "none"}));
  launch->callback([args, &ctx] {
    install_stop_handlers();  // before run() lets a held-back stop signal through
    ctx.action = [args, &ctx] { return launch_runs(*args, ctx); };
  });

  CLI::App* fol = rem->add_subcommand("follow", "Print a remote run's event stream until it ends");
  fol->add_option("tag", args->tag, "Launch tag or run uuid (`mmlab remote list`)")->required();
  fol->add_option("--from-byte", args->from_byte, "Start at this byte of the stream")
      ->check(CLI::NonNegativeNumber);
  fol->add_option("--progress", args->progress, "jsonl | none")
      ->check(CLI::IsMember({"jsonl", "none"}));
  fol->callback([args, &ctx] {
    install_stop_handlers();
    ctx.action = [args, &ctx] { return follow(*args, ctx, args->tag, args->from_byte); };
  });

  CLI::App* st = rem->add_subcommand("stop", "SIGTERM to a remote trainer (it checkpoints)");
  st->add_option("tag", args->tag, "Launch tag or run uuid")->required();
  st->callback([args, &ctx] { ctx.action = [args, &ctx] { return stop(*args, ctx); }; });

  CLI::App* res = rem->add_subcommand("resume", "Resume a remote run on its host");
  res->add_option("tag", args->tag, "Launch tag, run uuid, or the run's id in --db")->required();
  res->add_option("--device", args->device, "Move it to this device on the host");
  res->add_flag("--follow", args->follow, "Then follow it");
  res->add_option("--progress", args->progress, "With --follow: jsonl | none")
      ->check(CLI::IsMember({"jsonl", "none"}));
  res->callback([args, &ctx] {
    install_stop_handlers();
    ctx.action = [args, &ctx] { return resume(*args, ctx); };
  });

  CLI::App* sy = rem->add_subcommand("sync", "Bring remote runs' new rows into the database");
  sy->add_option("tag", args->tags,
                 "Launch tags or run uuids (default: every one not seen ended yet)");
  sy->callback([args, &ctx] { ctx.action = [args, &ctx] { return sync(*args, ctx); }; });

  CLI::App* ls = rem->add_subcommand("list", "The remote runs this database knows");
  ls->callback([args, &ctx] { ctx.action = [args, &ctx] { return list(*args, ctx); }; });

  CLI::App* snap = rem->add_subcommand(
      "snapshot",
      "(run by `remote sync` on the host) one run's rows after a step, as SQLite on "
      "stdout");
  snap->add_option("--run", args->run_id, "Run id in --db")->required();
  snap->add_option("--after", args->after, "Only points after this step (default -1: all)");
  snap->callback([args, &ctx] {
    ctx.action = [args, &ctx] {
      remote::write_snapshot_to_stdout(ctx.db_path(), args->run_id, args->after);
      return kExitOk;
    };
  });
}

}  // namespace mmlab::cli
