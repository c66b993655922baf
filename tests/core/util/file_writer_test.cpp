// SPDX-License-Identifier: GPL-3.0-or-later
// The one file writer: its bytes arrive, and a full disk (/dev/full) or a missing folder is the
// user's error naming the file they asked for.
#include "core/util/file_writer.h"

#include <gtest/gtest.h>

#include <string>

#include "core/util/error.h"
#include "core/util/fs.h"
#include "test_support.h"

namespace mmlab {
namespace {

TEST(FileWriter, WritesEveryByte) {
  test::TempDir dir;
  const auto file = dir / "out.bin";
  {
    FileWriter out(file);
    out.write("abc");
    const char zeros[3] = {0, 0, 0};
    out.write(zeros, sizeof zeros);
    out.close();
  }
  EXPECT_EQ(read_file(file), std::string("abc\0\0\0", 6));
}

TEST(FileWriter, AFullDiskIsAResourceErrorNamingTheFileAskedFor) {
  FileWriter out("/dev/full", "/data/export.csv");
  try {
    out.write(std::string(1 << 16, 'x'));
    out.close();
    FAIL() << "no error from /dev/full";
  } catch (const ResourceError& e) {
    EXPECT_EQ(std::string(e.what()),
              "The disk is full while writing /data/export.csv. Free some space (or choose "
              "another location) and try again.");
    EXPECT_EQ(e.code(), kExitNoResource);
  }
}

TEST(FileWriter, AMissingFolderIsTheUsersError) {
  test::TempDir dir;
  try {
    FileWriter out(dir / "no-such-folder" / "f.json");
    FAIL() << "opened a file in a missing folder";
  } catch (const ResourceError&) {
    FAIL() << "not a full disk";
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), "Cannot write " + (dir / "no-such-folder" / "f.json").string() +
                               ": No such file or directory.");
    EXPECT_EQ(e.code(), kExitBadInput);
  }
}

}  // namespace
}  // namespace mmlab
