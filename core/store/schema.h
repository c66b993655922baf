// SPDX-License-Identifier: GPL-3.0-or-later
// The results store's schema as a list of forward migrations: migration i takes a database from
// PRAGMA user_version i to i + 1. A released migration is never edited; a change is a new entry.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/store/sqlite.h"

namespace mmlab::store {

/// PRAGMA application_id of every mmlab results database ("mmlb"), so that another program's
/// SQLite file is recognised and refused instead of being "migrated".
inline constexpr int32_t kApplicationId = 0x6d6d6c62;

/// The SQL of each migration, in order; schema version = its size.
const std::vector<std::string>& schema_migrations();

/// Reads the file's schema version and checks, without changing anything, that it is an mmlab
/// results database this build can open, or an empty file that can become one. Throws UserError
/// for a non-database file, another program's database or a newer schema.
int64_t identify(Database& db);

/// identify(), then applies the missing migrations, each in its own EXCLUSIVE transaction that
/// re-reads the version inside it (so processes opening a fresh file at once migrate it once),
/// retried while the database is busy until `deadline`. A read-only database must already be
/// current.
void migrate(Database& db, std::chrono::steady_clock::time_point deadline);

}  // namespace mmlab::store
