// SPDX-License-Identifier: GPL-3.0-or-later
// The results store: one SQLite file holding experiments, runs, metric curves and their
// summaries, events, checkpoints, tags and notes (schema and concurrency model: docs/store.md).
//
// Who writes what: a trainer writes only its own run's rows, in short batched transactions; the
// studio writes only user metadata (tags, notes, queued runs). Several processes may write to one
// file at once (WAL + BEGIN IMMEDIATE + busy_timeout serialise them); readers never block writers.
//
// Its roles are separate types over one connection: RunReader (every query: the CLI's reports,
// the studio, remote sync), UserMetadata (what a user edits: tags, notes, the queue, deleting
// runs) and RunWriter (a trainer's handle, bound to the one run whose rows it writes).
//
// One ResultsStore is one connection, shared by the roles it hands out: use them from one thread
// at a time (open another store for a worker thread). Every SQLite failure is thrown, naming the
// database file:
//   mmlab::UserError      the user can fix it (not a database, newer schema, unwritable directory,
//                         read-only file, database locked for too long, unknown run id, bad tag);
//   mmlab::ResourceError  the disk is full;
//   mmlab::store::StoreError anything else (a bug or an I/O failure), with SQLite's message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store/records.h"
#include "core/store/run_reader.h"
#include "core/store/run_writer.h"
#include "core/store/sqlite.h"
#include "core/store/user_metadata.h"
#include "core/util/error.h"

namespace mmlab::store {

class ResultsStore {
 public:
  /// The schema version this build writes (PRAGMA user_version).
  static int schema_version();

  /// Opens or (read-write) creates the database at `path`, creating its directory, setting the
  /// pragmas and migrating an older schema forward. Throws UserError when the file is not an
  /// SQLite database, is another program's database, has a newer schema, or its directory
  /// cannot be written.
  explicit ResultsStore(const std::filesystem::path& path, OpenOptions options = {});
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  const std::filesystem::path& path() const;
  /// The low-level connection (for export tools and tests).
  Database& database();

  /// Every query.
  RunReader& reader() { return reader_; }
  /// What a user edits.
  UserMetadata& metadata() { return metadata_; }
  /// The writer of run `run_id`, the only handle a trainer needs: it writes that run's rows and
  /// keeps this connection open after the store is gone. A UserError "No run N in X." when the
  /// database holds no such run.
  RunWriter writer(int64_t run_id);

  // --- experiments and new runs ----------------------------------------------------------------
  /// The id of experiment `name`, created (with `spec_json`) when missing. An existing
  /// experiment keeps its spec: each run records its own full config.
  int64_t ensure_experiment(const std::string& name, const std::string& spec_json = "{}");
  /// Inserts a run and returns its id. config_json must be valid JSON.
  int64_t create_run(const NewRun& run);
  /// Inserts every run in one transaction (all or none) and returns their ids in order: the
  /// `queued` rows of a launched experiment.
  std::vector<int64_t> create_runs(const std::vector<NewRun>& runs);

  /// Copies every run of the database at `other` whose uuid is not here yet (with its
  /// experiment, points, summaries, events, checkpoints, tags and note), remapping ids.
  /// `other` is opened read-only and must have this build's schema version.
  ImportResult import_runs_from(const std::filesystem::path& other);

  /// "ok", or the problems PRAGMA integrity_check lists, one per line.
  std::string integrity_check();

 private:
  int64_t insert_run(const NewRun& run, double now);  // call inside a write txn

  std::shared_ptr<detail::Connection> c_;
  RunReader reader_;
  UserMetadata metadata_;
};

}  // namespace mmlab::store
