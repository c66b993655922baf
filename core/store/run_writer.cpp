// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/run_writer.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <utility>

#include "core/store/connection.h"
#include "core/store/run_reader.h"

namespace mmlab::store {

namespace {

// Running summary of one metric while a batch is appended.
struct SummaryAcc {
  std::optional<double> last;
  int64_t last_step = 0;
  std::optional<double> min;
  std::optional<int64_t> step_at_min;
  int64_t count = 0;
  bool recompute = false;  // a step went backwards or repeated: rebuild from the stored points
};

}  // namespace

RunWriter::RunWriter(std::shared_ptr<detail::Connection> connection, int64_t run_id)
    : c_(std::move(connection)), run_id_(run_id) {
  c_->require_run(run_id_);
}

const std::filesystem::path& RunWriter::path() const {
  return c_->path();
}

// --- the run's row -------------------------------------------------------------------------------

bool RunWriter::claim_queued(int64_t pid, const std::string& host) {
  c_->db
      .cached(
          "UPDATE runs SET status = 'running', pid = ?2, host = ?3, heartbeat_at = ?4 "
          "WHERE id = ?1 AND status = 'queued'")
      .bind_all(run_id_, pid, host, now_seconds())
      .run();
  if (c_->db.changes() > 0) return true;
  c_->require_run(run_id_);
  return false;
}

void RunWriter::record_start_config(const std::string& config_json, int64_t total_steps,
                                    const std::string& git_rev) {
  detail::require_json(config_json, "run config");
  c_->db.cached("UPDATE runs SET config_json = ?2, total_steps = ?3, git_rev = ?4 WHERE id = ?1")
      .bind_all(run_id_, config_json, total_steps, git_rev)
      .run();
  if (c_->db.changes() == 0) c_->require_run(run_id_);
}

void RunWriter::mark_started(const RunStart& start) {
  const double now = now_seconds();
  c_->db
      .cached(
          "UPDATE runs SET status = 'running', pid = ?2, host = ?3, device = ?4, "
          "torch_version = ?5, cuda_version = ?6, params_total = ?7, params_active = ?8, "
          "params_nonembed = ?9, started_at = coalesce(started_at, ?10), ended_at = NULL, "
          "error_text = '', heartbeat_at = ?10 WHERE id = ?1")
      .bind_all(run_id_, start.pid, start.host, start.device, start.torch_version,
                start.cuda_version, start.params_total, start.params_active, start.params_nonembed,
                now)
      .run();
  if (c_->db.changes() == 0) c_->require_run(run_id_);
}

void RunWriter::set_status(RunStatus status, const std::string& error_text) {
  if (status == RunStatus::kLost) {
    throw std::invalid_argument("set_status: 'lost' is derived at read time, never stored");
  }
  const bool keeps_error = status == RunStatus::kFailed || status == RunStatus::kDiverged ||
                           status == RunStatus::kStopped;
  std::optional<double> ended;
  if (is_terminal(status)) ended = now_seconds();
  c_->db.cached("UPDATE runs SET status = ?2, error_text = ?3, ended_at = ?4 WHERE id = ?1")
      .bind_all(run_id_, to_string(status), keeps_error ? error_text : std::string(), ended)
      .run();
  if (c_->db.changes() == 0) c_->require_run(run_id_);
}

void RunWriter::set_ops_used(const std::string& ops_used_json) {
  c_->db.cached("UPDATE runs SET ops_used = ?2 WHERE id = ?1")
      .bind_all(run_id_, ops_used_json)
      .run();
  if (c_->db.changes() == 0) c_->require_run(run_id_);
}

void RunWriter::heartbeat(int64_t step, int64_t tokens) {
  c_->db.cached("UPDATE runs SET step = ?2, tokens = ?3, heartbeat_at = ?4 WHERE id = ?1")
      .bind_all(run_id_, step, tokens, now_seconds())
      .run();
  if (c_->db.changes() == 0) c_->require_run(run_id_);
}

// --- metric points -------------------------------------------------------------------------------

void RunWriter::recompute_summary(int64_t metric_id) {
  c_->db.cached("DELETE FROM run_summaries WHERE run_id = ?1 AND metric_id = ?2")
      .bind_all(run_id_, metric_id)
      .run();
  c_->db
      .cached(R"sql(
INSERT INTO run_summaries (run_id, metric_id, last, last_step, min, step_at_min, count)
SELECT ?1, ?2,
  (SELECT value FROM metric_points WHERE run_id = ?1 AND metric_id = ?2
   ORDER BY step DESC LIMIT 1),
  max(step), min(value),
  (SELECT step FROM metric_points WHERE run_id = ?1 AND metric_id = ?2 AND value IS NOT NULL
   ORDER BY value, step LIMIT 1),
  count(*)
FROM metric_points WHERE run_id = ?1 AND metric_id = ?2 HAVING count(*) > 0)sql")
      .bind_all(run_id_, metric_id)
      .run();
}

void RunWriter::append_points(const std::vector<MetricPoint>& points) {
  if (points.empty()) return;
  try {
    Transaction txn(c_->db);
    c_->require_run(run_id_);
    // A batch touches few metrics (~10): a small vector beats a hash map here.
    std::vector<std::pair<int64_t, SummaryAcc>> accs;
    auto acc_for = [&](int64_t id) -> SummaryAcc& {
      for (auto& [mid, acc] : accs) {
        if (mid == id) return acc;
      }
      SummaryAcc acc;
      Statement s = c_->db.cached(
          "SELECT last, last_step, min, step_at_min, count FROM run_summaries "
          "WHERE run_id = ?1 AND metric_id = ?2");
      if (s.bind_all(run_id_, id).step()) {
        acc.last = s.column_opt_double(0);
        acc.last_step = s.column_int64(1);
        acc.min = s.column_opt_double(2);
        acc.step_at_min = s.column_opt_int64(3);
        acc.count = s.column_int64(4);
      }
      return accs.emplace_back(id, acc).second;
    };

    // INSERT OR REPLACE: a resumed run that repeats a step overwrites the old point.
    Statement insert = c_->db.cached(
        "INSERT OR REPLACE INTO metric_points (run_id, metric_id, step, tokens, wall, value) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    insert.bind(1, run_id_);
    for (const MetricPoint& p : points) {
      const int64_t id = c_->metric_id(p.metric);
      SummaryAcc& acc = acc_for(id);
      insert.bind(2, id).bind(3, p.step).bind(4, p.tokens).bind(5, p.wall).bind(6, p.value);
      insert.run();
      if (acc.recompute) continue;
      if (acc.count > 0 && p.step <= acc.last_step) {
        // The point may have replaced one that held the min or the last value: the incremental
        // summary cannot tell, so this metric is rebuilt from its points below.
        acc.recompute = true;
        continue;
      }
      ++acc.count;
      acc.last_step = p.step;
      acc.last = std::isnan(p.value) ? std::nullopt : std::optional<double>(p.value);
      if (!std::isnan(p.value) && (!acc.min || p.value < *acc.min)) {
        acc.min = p.value;
        acc.step_at_min = p.step;
      }
    }

    for (const auto& [id, acc] : accs) {
      if (acc.recompute) {
        recompute_summary(id);
        continue;
      }
      c_->db
          .cached(
              "INSERT OR REPLACE INTO run_summaries "
              "(run_id, metric_id, last, last_step, min, step_at_min, count) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
          .bind_all(run_id_, id, acc.last, acc.last_step, acc.min, acc.step_at_min, acc.count)
          .run();
    }
    txn.commit();
  } catch (...) {
    // Names inserted by the rolled-back transaction do not exist; their cached ids are wrong.
    c_->forget_metric_ids();
    throw;
  }
}

void RunWriter::truncate_after(int64_t step) {
  Transaction txn(c_->db);
  c_->require_run(run_id_);
  c_->db.cached("DELETE FROM metric_points WHERE run_id = ?1 AND step > ?2")
      .bind_all(run_id_, step)
      .run();
  c_->db.cached("DELETE FROM events WHERE run_id = ?1 AND step > ?2").bind_all(run_id_, step).run();
  std::vector<int64_t> ids;
  {
    Statement s = c_->db.cached("SELECT metric_id FROM run_summaries WHERE run_id = ?1");
    s.bind(1, run_id_);
    while (s.step()) ids.push_back(s.column_int64(0));
  }
  for (int64_t id : ids) recompute_summary(id);
  txn.commit();
}

int64_t RunWriter::add_event(const std::string& kind, const std::string& payload_json,
                             std::optional<int64_t> step, std::optional<double> wall) {
  detail::require_json(payload_json, "event payload");
  Transaction txn(c_->db);
  c_->require_run(run_id_);
  c_->db
      .cached(
          "INSERT INTO events (run_id, step, wall, kind, payload_json, created_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind_all(run_id_, step, wall, kind, payload_json, now_seconds())
      .run();
  int64_t id = c_->db.last_insert_rowid();
  txn.commit();
  return id;
}

int64_t RunWriter::add_checkpoint(int64_t step, const std::string& path, int64_t bytes,
                                  const std::string& hash) {
  Transaction txn(c_->db);
  c_->require_run(run_id_);
  c_->db
      .cached(
          "INSERT INTO checkpoints (run_id, step, path, bytes, hash, created_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind_all(run_id_, step, path, bytes, hash, now_seconds())
      .run();
  int64_t id = c_->db.last_insert_rowid();
  txn.commit();
  return id;
}

void RunWriter::delete_checkpoint_row(int64_t checkpoint_id) {
  // run_id: a writer never touches another run's rows, whatever id it is given.
  c_->db.cached("DELETE FROM checkpoints WHERE id = ?1 AND run_id = ?2")
      .bind_all(checkpoint_id, run_id_)
      .run();
}

// --- reading back --------------------------------------------------------------------------------

RunRow RunWriter::row() {
  return RunReader(*c_).get_run(run_id_);
}

std::vector<EventRow> RunWriter::events(int64_t after_id) {
  return RunReader(*c_).events(run_id_, after_id);
}

std::vector<CheckpointRow> RunWriter::checkpoints() {
  return RunReader(*c_).list_checkpoints(run_id_);
}

std::optional<CheckpointRow> RunWriter::latest_checkpoint() {
  return RunReader(*c_).latest_checkpoint(run_id_);
}

// --- MetricBuffer --------------------------------------------------------------------------------

MetricBuffer::MetricBuffer(RunWriter& run, size_t max_points, std::chrono::milliseconds max_age)
    : run_(run), max_points_(std::max<size_t>(1, max_points)), max_age_(max_age) {
  pending_.reserve(max_points_);
}

MetricBuffer::~MetricBuffer() {
  try {
    flush();
  } catch (const std::exception& e) {
    // A destructor cannot throw; say what was lost rather than dropping it silently.
    std::cerr << "mmlab: " << pending_.size() << " metric points of run " << run_.run_id()
              << " were not saved: " << e.what() << "\n";
  }
}

void MetricBuffer::add(std::string metric, int64_t step, int64_t tokens, double wall,
                       double value) {
  add(MetricPoint{std::move(metric), step, tokens, wall, value});
}

void MetricBuffer::add(MetricPoint point) {
  if (pending_.empty()) oldest_ = std::chrono::steady_clock::now();
  pending_.push_back(std::move(point));
  maybe_flush();
}

void MetricBuffer::maybe_flush() {
  if (pending_.size() >= max_points_ || std::chrono::steady_clock::now() - oldest_ >= max_age_) {
    flush();
  }
}

void MetricBuffer::flush() {
  if (pending_.empty()) return;
  run_.append_points(pending_);
  pending_.clear();
}

size_t MetricBuffer::discard() {
  const size_t dropped = pending_.size();
  pending_.clear();
  return dropped;
}

}  // namespace mmlab::store
