// SPDX-License-Identifier: GPL-3.0-or-later
// Internal to core/store: one open results database and what every role over it shares
// (ResultsStore, RunReader, RunWriter and UserMetadata are views of one Connection). Not for
// code outside core/store, which holds one of those roles instead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/store/records.h"
#include "core/store/sqlite.h"
#include "core/util/error.h"

namespace mmlab::store::detail {

class Connection {
 public:
  /// Opens or creates the database, sets the pragmas and migrates it (ResultsStore's
  /// constructor documents the errors).
  Connection(const std::filesystem::path& path, OpenOptions options);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::filesystem::path& path() const { return db.path(); }

  /// Throws no_run_error() when the run does not exist.
  void require_run(int64_t run_id);
  UserError no_run_error(int64_t run_id) const;

  /// The id of metric `name`, created when missing: call inside a write transaction, and
  /// forget_metric_ids() when that transaction rolls back.
  int64_t metric_id(const std::string& name);
  std::optional<int64_t> find_metric_id(std::string_view name);
  void forget_metric_ids() { metric_ids_.clear(); }

  const OpenOptions options;  // before db, which is opened with them
  Database db;
  const std::string host;  // current_host(), read once

 private:
  // name -> id; metric ids are never reused (names are never deleted), so entries stay valid
  // across transactions of other processes.
  std::unordered_map<std::string, int64_t> metric_ids_;
};

/// `text` without leading and trailing white space.
std::string trim(const std::string& text);
/// Throws a UserError naming `what` when `text` is not a JSON document.
void require_json(const std::string& text, const char* what);

}  // namespace mmlab::store::detail
