// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/queue/experiment_queue.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/data/corpus.h"
#include "core/util/error.h"

namespace mmlab::queue {

using nlohmann::json;

namespace {

// The settings that decide what a run trains, flattened to "section.key" -> value.
void flatten(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (!j.is_object()) {
    out[prefix] = j;
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
}

RunAction action_for(store::RunStatus status) {
  switch (status) {
    case store::RunStatus::kQueued:
      return RunAction::kStart;
    case store::RunStatus::kStopped:
    case store::RunStatus::kFailed:
    case store::RunStatus::kLost:
      return RunAction::kResume;
    case store::RunStatus::kFinished:
    case store::RunStatus::kDiverged:  // resuming would only diverge again
    case store::RunStatus::kRunning:
      return RunAction::kSkip;
  }
  return RunAction::kSkip;
}

const char* action_words(RunAction a) {
  switch (a) {
    case RunAction::kStart:
      return "to start";
    case RunAction::kResume:
      return "to resume";
    case RunAction::kSkip:
      return "skipped";
  }
  return "";
}

store::NewRun queued_row(int64_t experiment_id, const RunConfig& rc) {
  store::NewRun nr;
  nr.experiment_id = experiment_id;
  nr.name = rc.name;
  nr.family = rc.model.family;
  nr.config_json = to_json(rc).dump();
  nr.seed = rc.seed;
  nr.total_steps = rc.train.resolved_steps();
  nr.status = store::RunStatus::kQueued;
  return nr;
}

}  // namespace

std::string config_difference(const RunConfig& wanted, const std::string& stored_json) {
  json stored;
  try {
    stored = json::parse(stored_json);
  } catch (const json::exception&) {
    return "the stored config is not readable";
  }
  std::map<std::string, json> a, b;
  flatten(to_json(wanted), "", a);
  flatten(stored, "", b);
  for (auto* m : {&a, &b}) {
    m->erase("train.device");
    if (wanted.model.vocab_size == 0) m->erase("model.vocab_size");
  }
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    if (it == b.end()) return key + " is " + value.dump() + " here but not set in the database";
    if (it->second != value)
      return key + " is " + value.dump() + " here but " + it->second.dump() + " in the database";
  }
  for (const auto& [key, value] : b)
    if (!a.count(key)) return key + " is " + value.dump() + " in the database but not set here";
  return {};
}

std::vector<QueuedRun> LaunchPlan::to_train() const {
  std::vector<QueuedRun> out;
  for (const QueuedRun& r : runs)
    if (r.action != RunAction::kSkip) out.push_back(r);
  return out;
}

std::string LaunchPlan::summary(const std::string& db) const {
  // "2 queued runs to start", grouped by status and action in the order they first appear.
  std::vector<std::pair<std::string, int>> groups;
  for (const QueuedRun& r : runs) {
    const std::string key =
        std::string(store::to_string(r.status)) + "\x1f" + action_words(r.action);
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (it == groups.end())
      groups.emplace_back(key, 1);
    else
      ++it->second;
  }
  std::string text = "Continuing experiment " + experiment + " in " + db + ":";
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string& key = groups[i].first;
    const size_t cut = key.find('\x1f');
    const int n = groups[i].second;
    text += (i == 0 ? " " : ", ") + std::to_string(n) + " " + key.substr(0, cut) +
            (n == 1 ? " run " : " runs ") + key.substr(cut + 1);
  }
  return text + ".";
}

LaunchPlan queue_experiment(store::ResultsStore& store, const Experiment& experiment,
                            const std::vector<RunConfig>& runs, const QueueOptions& options) {
  if (options.host.empty())
    for (const RunConfig& rc : runs) data::check_data_source(rc.data.source);
  LaunchPlan plan;
  plan.experiment = experiment.name;
  // The newest stored row of each run name (older databases may hold several).
  std::map<std::string, store::RunRow> stored;
  if (auto ex = store.reader().find_experiment(experiment.name)) {
    store::RunFilter f;
    f.experiment_id = ex->id;
    for (store::RunRow& r : store.reader().list_runs(f)) stored[r.name] = std::move(r);
  }
  std::vector<const RunConfig*> missing;
  for (const RunConfig& rc : runs) {
    QueuedRun q;
    q.name = rc.name;
    q.device = rc.train.device;
    auto it = stored.find(rc.name);
    if (it == stored.end()) {
      missing.push_back(&rc);
      plan.runs.push_back(q);
      continue;
    }
    const std::string diff = config_difference(rc, it->second.config_json);
    if (!diff.empty()) {
      throw UserError("The results database " + store.path().string() + " already has run " +
                          rc.name + " of experiment " + experiment.name + " with another config (" +
                          diff + ").",
                      "Give the experiment a new \"name\" to keep both, or use another --db.");
    }
    plan.continuing = true;
    q.run_id = it->second.id;
    q.uuid = it->second.uuid;
    q.status = it->second.effective_status;
    q.action = action_for(q.status);
    plan.runs.push_back(q);
  }
  if (!missing.empty()) {
    const int64_t experiment_id =
        store.ensure_experiment(experiment.name, experiment.source.dump());
    std::vector<store::NewRun> rows;
    for (const RunConfig* rc : missing) {
      rows.push_back(queued_row(experiment_id, *rc));
      rows.back().host = options.host;
      if (auto it = options.uuids.find(rc->name); it != options.uuids.end())
        rows.back().uuid = it->second;
    }
    const std::vector<int64_t> ids = store.create_runs(rows);
    size_t next = 0;
    for (QueuedRun& q : plan.runs)
      if (q.run_id == 0) {
        q.run_id = ids[next++];
        q.uuid = store.reader().get_run(q.run_id).uuid;
      }
  }
  return plan;
}

}  // namespace mmlab::queue
