// SPDX-License-Identifier: GPL-3.0-or-later
// The results store's schema as a list of forward migrations: migration i takes a database from
// PRAGMA user_version i to i + 1. A released migration is never edited; a change is a new entry.
#pragma once

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

/// Checks the file's application id and version and applies the missing migrations, each in its
/// own IMMEDIATE transaction (re-reading the version inside it, so two processes opening a fresh
/// file at once migrate it once). A read-only database must already be current.
void migrate(Database& db);

}  // namespace mmlab::store
