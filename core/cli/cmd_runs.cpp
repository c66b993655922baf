// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab runs list|show|rm|tag|note|import`: the results browser for a terminal. Reading commands
// open the database read-only, so they never wait for (or block) a trainer writing to it.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/cli/report.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

store::OpenOptions read_only() {
  store::OpenOptions options;
  options.mode = store::Database::Mode::kReadOnly;
  return options;
}

// For commands that change an existing database: opening read-write would create a missing file,
// and an empty new database is never what a mistyped --db meant.
std::unique_ptr<store::ResultsStore> open_existing(const Context& ctx) {
  store::OpenOptions options;
  options.create = false;
  return std::make_unique<store::ResultsStore>(ctx.db_path(), options);
}

json optional_json(const std::optional<double>& v) {
  return v && !std::isnan(*v) ? json(*v) : json(nullptr);
}

json optional_json(const std::optional<int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

// RunRow::ops_used as an object ({} before the run's first step).
json ops_used_json(const store::RunRow& r) {
  json j = r.ops_used.empty() ? json::object() : json::parse(r.ops_used, nullptr, false);
  return j.is_object() ? j : json::object();
}

// "causal_conv1d=cuda, selective_scan=cuda"; "" before the first step or when no op ran.
std::string ops_used_text(const store::RunRow& r) {
  std::string s;
  const json j = ops_used_json(r);
  for (auto it = j.begin(); it != j.end(); ++it) {
    s += (s.empty() ? "" : ", ") + it.key() + "=" +
         (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  }
  return s;
}

// The runs of the database whose remote host was away at the last contact (remote::LaunchBook):
// shown `unreachable`, not `lost`. A damaged list of remote runs hides nothing here (`mmlab
// remote list` names the file).
using Unreachable = std::map<std::string, std::string>;
Unreachable unreachable_runs(const Context& ctx) {
  try {
    return remote::LaunchBook::load(ctx.db_path()).unreachable_runs();
  } catch (const UserError&) {
    return {};
  }
}

// The run as `runs list --format json` and `runs show --format json` print it: every column of
// RunRow under its own name (the store's vocabulary), times in seconds since the epoch.
json run_json(const store::RunRow& r, const Unreachable& away) {
  return json{{"id", r.id},
              {"uuid", r.uuid},
              {"experiment_id", r.experiment_id},
              {"experiment", r.experiment},
              {"name", r.name},
              {"status", remote::shown_status(r, away)},
              {"stored_status", store::to_string(r.status)},
              {"family", r.family},
              {"seed", r.seed},
              {"host", r.host},
              {"pid", r.pid},
              {"device", r.device},
              {"git_rev", r.git_rev},
              {"torch_version", r.torch_version},
              {"cuda_version", r.cuda_version},
              {"params_total", r.params_total},
              {"params_active", r.params_active},
              {"params_nonembed", r.params_nonembed},
              {"step", r.step},
              {"total_steps", r.total_steps},
              {"tokens", r.tokens},
              {"created_at", r.created_at},
              {"started_at", optional_json(r.started_at)},
              {"ended_at", optional_json(r.ended_at)},
              {"heartbeat_at", optional_json(r.heartbeat_at)},
              {"duration_s", optional_json(r.duration_s)},
              {"error_text", r.error_text},
              {"ops_used", ops_used_json(r)},
              {"tags", r.tags},
              {"final_loss_smooth", optional_json(r.final_loss_smooth)},
              {"best_val_loss", optional_json(r.best_val_loss)},
              {"best_val_step", optional_json(r.best_val_step)},
              {"tokens_per_s", optional_json(r.tokens_per_s)}};
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// --- list --------------------------------------------------------------------------------------

struct ListOptions {
  std::string experiment, family, status, tag, text;
  std::string format = "table";
};

int list_runs(const Context& ctx, const ListOptions& o) {
  store::ResultsStore db(ctx.db_path(), read_only());
  store::RunFilter filter;
  filter.family = o.family;
  filter.tag = o.tag;
  filter.text = o.text;
  if (!o.status.empty()) filter.status = store::parse_run_status(o.status);
  if (!o.experiment.empty())
    filter.experiment_id = resolve_experiment(db.reader(), o.experiment).id;
  std::vector<store::RunRow> runs = db.reader().list_runs(filter);
  const Unreachable away = unreachable_runs(ctx);
  if (filter.status == store::RunStatus::kLost) {
    // A run whose host is away is not lost.
    runs.erase(std::remove_if(
                   runs.begin(), runs.end(),
                   [&](const store::RunRow& r) { return remote::shown_status(r, away) != "lost"; }),
               runs.end());
  }

  if (o.format == "json") {
    json out = json::array();
    for (const auto& r : runs) out.push_back(run_json(r, away));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (runs.empty()) {
    std::cout << "No runs"
              << (filter.text.empty() && filter.family.empty() && filter.tag.empty() &&
                          !filter.status && !filter.experiment_id
                      ? ""
                      : " match")
              << " in " << db.path().string() << ".\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    rows.push_back(
        {std::to_string(r.id), r.experiment, r.name, r.family, remote::shown_status(r, away),
         std::to_string(r.step) + "/" + std::to_string(r.total_steps),
         format_count(static_cast<double>(r.tokens)), format_fixed(r.final_loss_smooth, 4),
         format_fixed(r.best_val_loss, 4), r.tokens_per_s ? format_count(*r.tokens_per_s) : "–",
         format_count(static_cast<double>(r.params_active)) + "/" +
             format_count(static_cast<double>(r.params_total)),
         format_time(r.created_at)});
  }
  std::cout << render_text_table(
      {"id", "experiment", "name", "family", "status", "step", "tokens", "loss_smooth", "best_val",
       "tok/s", "params", "created"},
      rows, {true, false, false, false, false, true, true, true, true, true, true, false});
  return kExitOk;
}

// --- show --------------------------------------------------------------------------------------

int show_run(const Context& ctx, const std::string& run_text, const std::string& format) {
  store::ResultsStore db(ctx.db_path(), read_only());
  const store::RunRow r = resolve_run(db.reader(), run_text);
  const std::vector<store::SummaryRow> summaries = db.reader().summaries(r.id);
  const std::vector<store::CheckpointRow> checkpoints = db.reader().list_checkpoints(r.id);
  const std::string note = db.reader().note(r.id);
  const Unreachable away = unreachable_runs(ctx);
  // A config that does not parse (written by a foreign tool) is shown as the text it is.
  json config = json::parse(r.config_json, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) config = r.config_json;

  if (format == "json") {
    json out = run_json(r, away);
    out["config"] = config;
    out["note"] = note;
    json sums = json::array();
    for (const auto& s : summaries) {
      sums.push_back({{"metric", s.metric},
                      {"last", optional_json(s.last)},
                      {"last_step", s.last_step},
                      {"min", optional_json(s.min)},
                      {"step_at_min", optional_json(s.step_at_min)},
                      {"count", s.count}});
    }
    out["summaries"] = sums;
    json cks = json::array();
    for (const auto& c : checkpoints) {
      cks.push_back({{"step", c.step},
                     {"path", c.path},
                     {"bytes", c.bytes},
                     {"hash", c.hash},
                     {"created_at", c.created_at}});
    }
    out["checkpoints"] = cks;
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }

  std::vector<std::vector<std::string>> fields;
  auto field = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) fields.push_back({key + ":", value});
  };
  auto time_field = [&](const std::string& key, const std::optional<double>& t) {
    if (t) field(key, format_time(*t));
  };
  field("run", std::to_string(r.id));
  field("name", r.name);
  field("experiment", r.experiment + " (" + std::to_string(r.experiment_id) + ")");
  field("uuid", r.uuid);
  std::string status = remote::shown_status(r, away);
  if (status == "unreachable") {
    status +=
        " (stored as " + std::string(store::to_string(r.status)) + "; " + away.at(r.uuid) + ")";
  } else if (r.effective_status != r.status) {
    status += " (stored as " + std::string(store::to_string(r.status)) +
              "; its heartbeat is stale and its process is gone)";
  }
  field("status", status);
  field("family", r.family);
  field("seed", std::to_string(r.seed));
  field("step", std::to_string(r.step) + " / " + std::to_string(r.total_steps));
  field("tokens", std::to_string(r.tokens));
  field("params", "active " + std::to_string(r.params_active) + ", total " +
                      std::to_string(r.params_total) + ", non-embedding " +
                      std::to_string(r.params_nonembed));
  field("final loss_smooth", format_fixed(r.final_loss_smooth, 6));
  field("best val_loss", r.best_val_loss ? format_fixed(r.best_val_loss, 6) + " at step " +
                                               std::to_string(r.best_val_step.value_or(0))
                                         : "–");
  if (r.tokens_per_s) field("tokens/s", format_fixed(r.tokens_per_s, 1));
  field("host", r.host);
  if (r.pid) field("pid", std::to_string(r.pid));
  field("device", r.device);
  field("git revision", r.git_rev);
  field("torch", r.torch_version);
  field("cuda", r.cuda_version);
  field("ops", ops_used_text(r));
  time_field("created", r.created_at);
  time_field("started", r.started_at);
  time_field("ended", r.ended_at);
  time_field("heartbeat", r.heartbeat_at);
  if (r.duration_s) field("duration", format_fixed(r.duration_s, 1) + " s");
  field("tags", join(r.tags, ", "));
  std::cout << render_text_table({}, fields, {false, false});
  if (!note.empty()) std::cout << "\nNote:\n" << note << "\n";
  if (!r.error_text.empty()) std::cout << "\nError:\n" << r.error_text << "\n";

  if (!summaries.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : summaries) {
      rows.push_back({s.metric, s.last ? format_exact(*s.last) : "–", std::to_string(s.last_step),
                      s.min ? format_exact(*s.min) : "–",
                      s.step_at_min ? std::to_string(*s.step_at_min) : "–",
                      std::to_string(s.count)});
    }
    std::cout << "\nMetrics:\n"
              << render_text_table({"metric", "last", "last step", "min", "min step", "points"},
                                   rows, {false, true, true, true, true, true});
  }
  if (!checkpoints.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : checkpoints) {
      rows.push_back({std::to_string(c.step), format_count(static_cast<double>(c.bytes)) + "B",
                      c.hash, c.path});
    }
    std::cout << "\nCheckpoints:\n"
              << render_text_table({"step", "size", "hash", "path"}, rows,
                                   {true, true, false, false});
  }
  std::cout << "\nConfig:\n"
            << (config.is_string() ? config.get<std::string>() : config.dump(2)) << "\n";
  return kExitOk;
}

// --- rm ----------------------------------------------------------------------------------------

int remove_runs(const Context& ctx, const std::vector<std::string>& texts, bool yes) {
  const auto opened = open_existing(ctx);
  store::ResultsStore& db = *opened;
  // Resolve every id before deleting anything, so a typo in the list deletes nothing.
  std::vector<store::RunRow> runs;
  for (const auto& t : texts) {
    store::RunRow r = resolve_run(db.reader(), t);
    bool seen = false;
    for (const auto& o : runs) seen = seen || o.id == r.id;
    if (!seen) runs.push_back(std::move(r));
  }
  std::vector<std::string> ids;
  for (const auto& r : runs) ids.push_back(std::to_string(r.id));
  if (!yes) {
    throw UserError("Deleting run" + std::string(runs.size() > 1 ? "s " : " ") + join(ids, ", ") +
                        " and " + (runs.size() > 1 ? "their" : "its") +
                        " checkpoint files needs confirmation.",
                    "Add --yes to delete.");
  }
  const Unreachable away = unreachable_runs(ctx);
  for (const auto& r : runs) {
    // Deleting a live run's rows would make its trainer fail on its next write.
    if (r.effective_status == store::RunStatus::kRunning) {
      throw UserError("Run " + std::to_string(r.id) + " (" + r.name + ") is still running.",
                      "Stop it first (SIGTERM to its trainer, or Stop in the studio).");
    }
    // Its host is away: it may still be training there, and its rows would come back.
    if (remote::shown_status(r, away) == "unreachable") {
      throw UserError("Run " + std::to_string(r.id) + " (" + r.name +
                          ") may still be training on a host that cannot be reached now.",
                      "Wait until `mmlab remote sync` reaches it, then stop or delete it.");
    }
  }
  for (const auto& r : runs) {
    const std::vector<store::CheckpointRow> checkpoints = db.reader().list_checkpoints(r.id);
    // Rows first: if the process dies in between, what is left is an orphan file, never a run
    // whose checkpoints are missing.
    db.metadata().delete_run(r.id);
    int removed = 0;
    std::vector<fs::path> dirs;
    for (const auto& c : checkpoints) {
      std::error_code ec;
      if (fs::remove(c.path, ec)) {
        ++removed;
      } else if (ec) {
        std::cerr << "mmlab: warning: could not delete the checkpoint " << c.path << " ("
                  << ec.message() << ").\n";
      }
      const fs::path dir = fs::path(c.path).parent_path();
      if (!dir.empty() && (dirs.empty() || dirs.back() != dir)) dirs.push_back(dir);
    }
    // The trainer keeps a run's checkpoints in a folder of their own; drop it once empty.
    for (const auto& d : dirs) {
      std::error_code ec;
      if (fs::is_directory(d, ec) && fs::is_empty(d, ec)) fs::remove(d, ec);
    }
    std::cout << "Deleted run " << r.id << " (" << r.name << ")";
    if (!checkpoints.empty()) {
      std::cout << " and " << removed << " checkpoint file" << (removed == 1 ? "" : "s");
    }
    std::cout << ".\n";
  }
  return kExitOk;
}

// --- tag, note, import -------------------------------------------------------------------------

int tag_run(const Context& ctx, const std::string& run_text, const std::vector<std::string>& tags,
            bool remove) {
  const auto opened = open_existing(ctx);
  store::ResultsStore& db = *opened;
  const store::RunRow r = resolve_run(db.reader(), run_text);
  for (const auto& t : tags) {
    if (remove) {
      db.metadata().remove_tag(r.id, t);
    } else {
      db.metadata().add_tag(r.id, t);
    }
  }
  const std::vector<std::string> now = db.reader().tags(r.id);
  std::cout << "Run " << r.id << " tags: " << (now.empty() ? "(none)" : join(now, ", ")) << "\n";
  return kExitOk;
}

int note_run(const Context& ctx, const std::string& run_text, const std::string& text) {
  const auto opened = open_existing(ctx);
  store::ResultsStore& db = *opened;
  const store::RunRow r = resolve_run(db.reader(), run_text);
  db.metadata().set_note(r.id, text);
  std::cout << (text.empty() ? "Removed the note of run " : "Saved the note of run ") << r.id
            << ".\n";
  return kExitOk;
}

int import_runs(const Context& ctx, const std::string& other) {
  std::error_code ec;
  if (!fs::exists(other, ec)) {
    throw UserError("The database " + other + " to import from does not exist.", "Check the path.");
  }
  store::ResultsStore db(ctx.db_path());
  if (fs::equivalent(other, db.path(), ec)) {
    throw UserError("The database " + other + " is the one being imported into.",
                    "Name another file, or pick the target with --db.");
  }
  const store::ImportResult result = db.import_runs_from(other);
  std::cout << "Imported " << result.imported << " run" << (result.imported == 1 ? "" : "s")
            << " from " << other;
  if (result.skipped) std::cout << " (" << result.skipped << " already present)";
  std::cout << " into " << db.path().string() << ".\n";
  return kExitOk;
}

}  // namespace

void add_runs_command(CLI::App& app, Context& ctx) {
  CLI::App* runs =
      app.add_subcommand("runs", "List, inspect, tag, annotate, delete or import runs");
  runs->require_subcommand(1);

  {
    auto o = std::make_shared<ListOptions>();
    CLI::App* sub = runs->add_subcommand("list", "List the runs in the results database");
    add_db_option(sub, ctx);
    sub->add_option("--experiment", o->experiment, "Only runs of this experiment");
    sub->add_option("--family", o->family, "Only this model family (mamba, moe-mamba, …)");
    sub->add_option("--status", o->status,
                    "Only this status: queued, running, stopped, finished, failed, diverged, lost");
    sub->add_option("--tag", o->tag, "Only runs with this tag");
    sub->add_option("--text", o->text,
                    "Only runs whose name, experiment, family or a tag contains this text");
    sub->add_option("--format", o->format, "table (default) or json")
        ->check(CLI::IsMember({"table", "json"}));
    sub->callback([&ctx, o] { ctx.action = [&ctx, o] { return list_runs(ctx, *o); }; });
  }
  {
    auto run = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>("text");
    CLI::App* sub = runs->add_subcommand(
        "show", "Show everything about one run: fields, metrics, checkpoints, note, config");
    add_db_option(sub, ctx);
    sub->add_option("run", *run, "Run id (as `mmlab runs list` shows it) or uuid")->required();
    sub->add_option("--format", *format, "text (default) or json")
        ->check(CLI::IsMember({"text", "json"}));
    sub->callback([&ctx, run, format] {
      ctx.action = [&ctx, run, format] { return show_run(ctx, *run, *format); };
    });
  }
  {
    auto ids = std::make_shared<std::vector<std::string>>();
    auto yes = std::make_shared<bool>(false);
    CLI::App* sub = runs->add_subcommand(
        "rm", "Delete runs with their metrics, events, tags, notes and checkpoint files");
    add_db_option(sub, ctx);
    sub->add_option("runs", *ids, "Run ids or uuids")->required();
    sub->add_flag("--yes,-y", *yes, "Really delete (required: nothing is deleted without it)");
    sub->callback([&ctx, ids, yes] {
      ctx.action = [&ctx, ids, yes] { return remove_runs(ctx, *ids, *yes); };
    });
  }
  {
    auto run = std::make_shared<std::string>();
    auto tags = std::make_shared<std::vector<std::string>>();
    auto remove = std::make_shared<bool>(false);
    CLI::App* sub = runs->add_subcommand("tag", "Add tags to a run (or remove them with --remove)");
    add_db_option(sub, ctx);
    sub->add_option("run", *run, "Run id or uuid")->required();
    sub->add_option("tags", *tags, "Tags")->required();
    sub->add_flag("--remove", *remove, "Remove the tags instead of adding them");
    sub->callback([&ctx, run, tags, remove] {
      ctx.action = [&ctx, run, tags, remove] { return tag_run(ctx, *run, *tags, *remove); };
    });
  }
  {
    auto run = std::make_shared<std::string>();
    auto text = std::make_shared<std::string>();
    CLI::App* sub =
        runs->add_subcommand("note", "Set a run's note (replacing the old one; \"\" removes it)");
    add_db_option(sub, ctx);
    sub->add_option("run", *run, "Run id or uuid")->required();
    sub->add_option("text", *text, "The note (quote it)")->required();
    sub->callback([&ctx, run, text] {
      ctx.action = [&ctx, run, text] { return note_run(ctx, *run, *text); };
    });
  }
  {
    auto other = std::make_shared<std::string>();
    CLI::App* sub = runs->add_subcommand(
        "import", "Copy the runs of another results database into this one (skipping known runs)");
    add_db_option(sub, ctx);
    sub->add_option("other", *other, "The other database (.sqlite)")->required();
    sub->callback(
        [&ctx, other] { ctx.action = [&ctx, other] { return import_runs(ctx, *other); }; });
  }
}

}  // namespace mmlab::cli
