// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/store/user_metadata.h"

#include <algorithm>
#include <stdexcept>

#include "core/store/connection.h"

namespace mmlab::store {

void UserMetadata::add_tag(int64_t run_id, const std::string& tag) {
  const std::string t = detail::trim(tag);
  const bool control =
      std::any_of(t.begin(), t.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (t.empty() || control) {
    throw UserError("The tag \"" + tag + "\" is empty or contains control characters.",
                    "Use a short word such as \"baseline\".");
  }
  Transaction txn(c_->db);
  c_->require_run(run_id);
  c_->db.cached("INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?1, ?2)")
      .bind_all(run_id, t)
      .run();
  txn.commit();
}

void UserMetadata::remove_tag(int64_t run_id, const std::string& tag) {
  c_->db.cached("DELETE FROM tags WHERE run_id = ?1 AND tag = ?2")
      .bind_all(run_id, detail::trim(tag))
      .run();
}

void UserMetadata::set_note(int64_t run_id, const std::string& text) {
  Transaction txn(c_->db);
  c_->require_run(run_id);
  if (text.empty()) {
    c_->db.cached("DELETE FROM notes WHERE run_id = ?1").bind(1, run_id).run();
  } else {
    c_->db.cached("INSERT OR REPLACE INTO notes (run_id, text, updated_at) VALUES (?1, ?2, ?3)")
        .bind_all(run_id, text, now_seconds())
        .run();
  }
  txn.commit();
}

void UserMetadata::delete_run(int64_t run_id) {
  // foreign_keys=ON (and, for metric_points, the runs_delete_points trigger) turns this into
  // range deletes of the run's points, summaries, events, checkpoints, tags and note: each table
  // is keyed or indexed by run_id first.
  c_->db.cached("DELETE FROM runs WHERE id = ?1").bind(1, run_id).run();
  if (c_->db.changes() == 0) c_->require_run(run_id);
}

bool UserMetadata::cancel_queued_run(int64_t run_id, const std::string& reason, RunStatus status) {
  if (status != RunStatus::kStopped && status != RunStatus::kFailed) {
    throw std::invalid_argument("cancel_queued_run: a queued run ends stopped or failed");
  }
  c_->db
      .cached(
          "UPDATE runs SET status = ?4, error_text = ?2, ended_at = ?3 "
          "WHERE id = ?1 AND status = 'queued'")
      .bind_all(run_id, reason, now_seconds(), to_string(status))
      .run();
  if (c_->db.changes() > 0) return true;
  c_->require_run(run_id);
  return false;
}

}  // namespace mmlab::store
