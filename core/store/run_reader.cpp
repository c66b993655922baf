// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/run_reader.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/store/connection.h"

namespace mmlab::store {

namespace {

bool pid_alive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  // EPERM: the process exists but belongs to another user.
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string like_pattern(const std::string& text) {
  std::string out = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('%');
  return out;
}

// The SELECT list of a RunRow. Summary figures come from three primary-key lookups into
// run_summaries, never from metric_points; the tags from the clustered tags table. The metric
// names are core/results/metric_names.h's constants (quoted as they are: none holds a quote).
const std::string& run_select() {
  // The id of one metric's name, as a scalar subquery.
  const auto metric_id = [](const char* name) {
    return std::string("(SELECT id FROM metric_names WHERE name = '") + name + "')";
  };
  static const std::string sql =
      R"sql(
SELECT r.id, r.uuid, r.experiment_id, e.name, r.name, r.status, r.family, r.config_json, r.seed,
       r.host, r.pid, r.device, r.git_rev, r.torch_version, r.cuda_version, r.params_total,
       r.params_active, r.params_nonembed, r.total_steps, r.step, r.tokens, r.created_at,
       r.started_at, r.ended_at, r.heartbeat_at, r.error_text,
       (SELECT group_concat(t.tag, char(31)) FROM tags t WHERE t.run_id = r.id),
       ls.last, vl.min, vl.step_at_min, tp.last,
       (SELECT p.wall FROM metric_points p
         WHERE p.run_id = r.id AND p.metric_id = ls.metric_id AND p.step = ls.last_step),
       r.ops_used
FROM runs r
JOIN experiments e ON e.id = r.experiment_id
LEFT JOIN run_summaries ls ON ls.run_id = r.id AND ls.metric_id = )sql" +
      metric_id(metric::kLossSmooth) +
      "\nLEFT JOIN run_summaries vl ON vl.run_id = r.id AND vl.metric_id = " +
      metric_id(metric::kValLoss) +
      "\nLEFT JOIN run_summaries tp ON tp.run_id = r.id AND tp.metric_id = " +
      metric_id(metric::kTokensPerS) + "\n";
  return sql;
}

RunRow read_run(const Statement& s) {
  RunRow r;
  r.id = s.column_int64(0);
  r.uuid = s.column_text(1);
  r.experiment_id = s.column_int64(2);
  r.experiment = s.column_text(3);
  r.name = s.column_text(4);
  r.status = parse_run_status(s.column_text(5));
  r.effective_status = r.status;
  r.family = s.column_text(6);
  r.config_json = s.column_text(7);
  r.seed = s.column_int64(8);
  r.host = s.column_text(9);
  r.pid = s.column_int64(10);
  r.device = s.column_text(11);
  r.git_rev = s.column_text(12);
  r.torch_version = s.column_text(13);
  r.cuda_version = s.column_text(14);
  r.params_total = s.column_int64(15);
  r.params_active = s.column_int64(16);
  r.params_nonembed = s.column_int64(17);
  r.total_steps = s.column_int64(18);
  r.step = s.column_int64(19);
  r.tokens = s.column_int64(20);
  r.created_at = s.column_double(21);
  r.started_at = s.column_opt_double(22);
  r.ended_at = s.column_opt_double(23);
  r.heartbeat_at = s.column_opt_double(24);
  r.error_text = s.column_text(25);
  std::string tags = s.column_text(26);
  for (size_t start = 0; !tags.empty() && start <= tags.size();) {
    size_t end = tags.find('\x1f', start);
    if (end == std::string::npos) end = tags.size();
    r.tags.push_back(tags.substr(start, end - start));
    start = end + 1;
  }
  std::sort(r.tags.begin(), r.tags.end());
  r.final_loss_smooth = s.column_opt_double(27);
  r.best_val_loss = s.column_opt_double(28);
  r.best_val_step = s.column_opt_int64(29);
  r.tokens_per_s = s.column_opt_double(30);
  r.duration_s = s.column_opt_double(31);
  r.ops_used = s.column_text(32);
  return r;
}

}  // namespace

const std::filesystem::path& RunReader::path() const {
  return c_->path();
}

double RunReader::lost_after_seconds() const {
  return c_->options.lost_after_seconds;
}

// --- experiments ---------------------------------------------------------------------------------

std::optional<ExperimentRow> RunReader::find_experiment(const std::string& name) {
  Statement s =
      c_->db.cached("SELECT id, name, spec_json, created_at FROM experiments WHERE name = ?1");
  if (!s.bind(1, name).step()) return std::nullopt;
  return ExperimentRow{s.column_int64(0), s.column_text(1), s.column_text(2), s.column_double(3)};
}

std::vector<ExperimentRow> RunReader::list_experiments() {
  std::vector<ExperimentRow> out;
  Statement s =
      c_->db.cached("SELECT id, name, spec_json, created_at FROM experiments ORDER BY id");
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_text(1), s.column_text(2), s.column_double(3)});
  }
  return out;
}

// --- runs ----------------------------------------------------------------------------------------

RunStatus RunReader::derive_status(const RunRow& row, double stale_after_seconds) const {
  if (row.status != RunStatus::kRunning) return row.status;
  // On this host the process table decides, at once: a trainer killed with SIGKILL (or by the
  // OOM killer) writes nothing more, and waiting for its heartbeat to go stale would show it
  // running for minutes. Elsewhere, or before the process recorded its pid, a stale heartbeat
  // is all there is to see.
  if (row.host == c_->host && row.pid > 0) {
    return pid_alive(row.pid) ? RunStatus::kRunning : RunStatus::kLost;
  }
  const double seen = row.heartbeat_at.value_or(row.started_at.value_or(row.created_at));
  return now_seconds() - seen <= stale_after_seconds ? RunStatus::kRunning : RunStatus::kLost;
}

std::vector<RunRow> RunReader::query_runs(const std::string& where,
                                          const std::function<void(Statement&)>& bind) {
  std::vector<RunRow> out;
  Statement s = c_->db.cached(run_select() + where + " ORDER BY r.id");
  bind(s);
  while (s.step()) {
    out.push_back(read_run(s));
    out.back().effective_status = derive_status(out.back(), c_->options.lost_after_seconds);
  }
  return out;
}

std::vector<RunRow> RunReader::list_runs(const RunFilter& filter) {
  using Arg = std::variant<int64_t, std::string>;
  std::vector<std::string> clauses;
  std::vector<Arg> args;
  if (!filter.text.empty()) {
    clauses.push_back(
        "(r.name LIKE ?1 ESCAPE '\\' OR e.name LIKE ?1 ESCAPE '\\' OR r.family LIKE ?1 ESCAPE '\\' "
        "OR EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag LIKE ?1 ESCAPE '\\'))");
    args.emplace_back(like_pattern(filter.text));
  }
  auto add = [&](const std::string& clause, Arg arg) {
    args.push_back(std::move(arg));
    std::string c = clause;
    c.replace(c.find('?'), 1, "?" + std::to_string(args.size()));
    clauses.push_back(c);
  };
  if (!filter.family.empty()) add("r.family = ?", filter.family);
  if (!filter.tag.empty()) {
    add("EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.tag = ?)",
        detail::trim(filter.tag));
  }
  if (filter.experiment_id) add("r.experiment_id = ?", *filter.experiment_id);
  if (filter.status) {
    // lost is a running run seen from outside; the exact status is checked after reading.
    RunStatus stored = *filter.status == RunStatus::kLost ? RunStatus::kRunning : *filter.status;
    add("r.status = ?", std::string(to_string(stored)));
  }
  std::string where;
  for (size_t i = 0; i < clauses.size(); ++i) where += (i == 0 ? " WHERE " : " AND ") + clauses[i];

  std::vector<RunRow> rows = query_runs(where, [&](Statement& s) {
    for (size_t i = 0; i < args.size(); ++i) {
      std::visit([&](const auto& v) { s.bind(static_cast<int>(i + 1), v); }, args[i]);
    }
  });
  if (filter.status) {
    rows.erase(
        std::remove_if(rows.begin(), rows.end(),
                       [&](const RunRow& r) { return r.effective_status != *filter.status; }),
        rows.end());
  }
  return rows;
}

std::optional<RunRow> RunReader::find_run(int64_t run_id) {
  std::vector<RunRow> rows =
      query_runs(" WHERE r.id = ?1", [&](Statement& s) { s.bind(1, run_id); });
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::optional<RunRow> RunReader::find_run_by_uuid(const std::string& uuid) {
  std::vector<RunRow> rows =
      query_runs(" WHERE r.uuid = ?1", [&](Statement& s) { s.bind(1, uuid); });
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

RunRow RunReader::get_run(int64_t run_id) {
  std::optional<RunRow> row = find_run(run_id);
  if (!row) throw c_->no_run_error(run_id);
  return *row;
}

std::vector<int64_t> RunReader::lost_runs(double stale_after_seconds) {
  std::vector<int64_t> out;
  for (const RunRow& r : query_runs(" WHERE r.status = 'running'", [](Statement&) {})) {
    if (derive_status(r, stale_after_seconds) == RunStatus::kLost) out.push_back(r.id);
  }
  return out;
}

int64_t RunReader::data_version() {
  return c_->db.query_int64("PRAGMA data_version");
}

// --- points --------------------------------------------------------------------------------------

std::vector<PointRow> RunReader::points_since(int64_t run_id, std::string_view metric,
                                              int64_t after_step) {
  std::vector<PointRow> out;
  std::optional<int64_t> id = c_->find_metric_id(metric);
  if (!id) return out;
  Statement s = c_->db.cached(
      "SELECT step, tokens, wall, value FROM metric_points "
      "WHERE run_id = ?1 AND metric_id = ?2 AND step > ?3 ORDER BY step");
  s.bind_all(run_id, *id, after_step);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_double(2), s.column_double(3)});
  }
  return out;
}

std::vector<PointRow> RunReader::points(int64_t run_id, std::string_view metric) {
  return points_since(run_id, metric, std::numeric_limits<int64_t>::min());
}

void RunReader::for_each_point(int64_t run_id,
                               const std::function<void(const std::string&, const PointRow&)>& fn) {
  // One read transaction, so the export is a consistent snapshot while the trainer writes.
  Transaction txn(c_->db, Transaction::Kind::kDeferred);
  for (const std::string& name : metric_names(run_id)) {
    for (const PointRow& p : points(run_id, name)) fn(name, p);
  }
  txn.commit();
}

std::vector<std::string> RunReader::metric_names(int64_t run_id) {
  std::vector<std::string> out;
  Statement s = c_->db.cached(
      "SELECT n.name FROM run_summaries s JOIN metric_names n ON n.id = s.metric_id "
      "WHERE s.run_id = ?1 ORDER BY n.name");
  s.bind(1, run_id);
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::vector<SummaryRow> RunReader::summaries(int64_t run_id) {
  std::vector<SummaryRow> out;
  Statement s = c_->db.cached(
      "SELECT n.name, s.last, s.last_step, s.min, s.step_at_min, s.count "
      "FROM run_summaries s JOIN metric_names n ON n.id = s.metric_id "
      "WHERE s.run_id = ?1 ORDER BY n.name");
  s.bind(1, run_id);
  while (s.step()) {
    out.push_back({s.column_text(0), s.column_opt_double(1), s.column_int64(2),
                   s.column_opt_double(3), s.column_opt_int64(4), s.column_int64(5)});
  }
  return out;
}

// --- events and checkpoints ----------------------------------------------------------------------

std::vector<EventRow> RunReader::events(int64_t run_id, int64_t after_id) {
  std::vector<EventRow> out;
  Statement s = c_->db.cached(
      "SELECT id, run_id, step, wall, kind, payload_json, created_at FROM events "
      "WHERE run_id = ?1 AND id > ?2 ORDER BY id");
  s.bind_all(run_id, after_id);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_opt_int64(2),
                   s.column_opt_double(3), s.column_text(4), s.column_text(5), s.column_double(6)});
  }
  return out;
}

std::vector<TrainingSession> RunReader::sessions(int64_t run_id) {
  std::vector<TrainingSession> out;
  Statement s =
      c_->db.cached("SELECT payload_json FROM events WHERE run_id = ?1 AND kind = ?2 ORDER BY id");
  s.bind_all(run_id, std::string(kSessionEvent));
  while (s.step()) {
    const auto j = nlohmann::json::parse(s.column_text(0), nullptr, false);
    if (!j.is_object() || !j.contains("wall") || !j.contains("started_at") ||
        !j["wall"].is_number() || !j["started_at"].is_number())
      continue;
    out.push_back({j["wall"].get<double>(), j["started_at"].get<double>()});
  }
  return out;
}

std::vector<CheckpointRow> RunReader::list_checkpoints(int64_t run_id) {
  std::vector<CheckpointRow> out;
  Statement s = c_->db.cached(
      "SELECT id, run_id, step, path, bytes, hash, created_at FROM checkpoints "
      "WHERE run_id = ?1 ORDER BY step, id");
  s.bind(1, run_id);
  while (s.step()) {
    out.push_back({s.column_int64(0), s.column_int64(1), s.column_int64(2), s.column_text(3),
                   s.column_int64(4), s.column_text(5), s.column_double(6)});
  }
  return out;
}

std::optional<CheckpointRow> RunReader::latest_checkpoint(int64_t run_id) {
  std::vector<CheckpointRow> all = list_checkpoints(run_id);
  if (all.empty()) return std::nullopt;
  return all.back();
}

// --- user metadata -------------------------------------------------------------------------------

std::vector<std::string> RunReader::tags(int64_t run_id) {
  std::vector<std::string> out;
  Statement s = c_->db.cached("SELECT tag FROM tags WHERE run_id = ?1 ORDER BY tag");
  s.bind(1, run_id);
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::vector<std::string> RunReader::all_tags() {
  std::vector<std::string> out;
  Statement s = c_->db.cached("SELECT DISTINCT tag FROM tags ORDER BY tag");
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::string RunReader::note(int64_t run_id) {
  Statement s = c_->db.cached("SELECT text FROM notes WHERE run_id = ?1");
  return s.bind(1, run_id).step() ? s.column_text(0) : std::string();
}

}  // namespace mmlab::store
