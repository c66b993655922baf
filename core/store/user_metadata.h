// SPDX-License-Identifier: GPL-3.0-or-later
// What a user edits in the results store, from the studio or `mmlab runs`: tags, notes, taking a
// queued run off the queue, deleting runs. A trainer never holds one (it holds a RunWriter).
#pragma once

#include <cstdint>
#include <string>

#include "core/store/records.h"

namespace mmlab::store {

namespace detail {
class Connection;
}

/// A view of one store's connection (ResultsStore::metadata()): used from that store's thread,
/// valid while the store is. RunReader reads what it writes.
class UserMetadata {
 public:
  explicit UserMetadata(detail::Connection& connection) : c_(&connection) {}

  /// Tags are trimmed; an empty tag or one with control characters is a UserError.
  void add_tag(int64_t run_id, const std::string& tag);
  void remove_tag(int64_t run_id, const std::string& tag);
  /// An empty text removes the note.
  void set_note(int64_t run_id, const std::string& text);

  /// Ends a `queued` run that never started: `stopped` (the user took it off the queue) or
  /// `failed` (its trainer could not be started), with `reason`. False when it is no longer
  /// queued.
  bool cancel_queued_run(int64_t run_id, const std::string& reason,
                         RunStatus status = RunStatus::kStopped);

  /// Deletes the run with its points, summaries, events, checkpoint rows, tags and note (not the
  /// checkpoint files: the caller owns those).
  void delete_run(int64_t run_id);

 private:
  detail::Connection* c_;
};

}  // namespace mmlab::store
