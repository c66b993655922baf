// SPDX-License-Identifier: GPL-3.0-or-later
// The one file writer: the file appears whole on commit() or not at all, the old file survives
// every failure, and a full disk or a missing folder is the user's error naming the file.
#include "core/util/file_writer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#include "core/util/error.h"
#include "core/util/fs.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(FileWriter, TheFileAppearsWholeOnCommitAndNotBefore) {
  test::TempDir dir;
  const fs::path file = dir / "out.bin";
  FileWriter out(file);
  out.write("abc");
  const char zeros[3] = {0, 0, 0};
  out.write(zeros, sizeof zeros);
  EXPECT_FALSE(fs::exists(file));
  const std::vector<std::string> pending = names_in(dir.path());
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_TRUE(is_temporary_file(pending[0])) << pending[0];
  out.commit();
  EXPECT_EQ(read_file(file), std::string("abc\0\0\0", 6));
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(FileWriter, WriteAtFillsInBytesWrittenBefore) {
  test::TempDir dir;
  FileWriter out(dir / "h.bin");
  out.write("....payload");
  out.write_at(0, "HEAD", 4);
  out.commit();
  EXPECT_EQ(read_file(dir / "h.bin"), "HEADpayload");
}

TEST(FileWriter, AWriterGoneWithoutCommitLeavesTheOldFileAndNoTemporary) {
  test::TempDir dir;
  const fs::path file = dir / "keep.json";
  write_file_atomically(file, "old");
  {
    FileWriter out(file);
    out.write("new and unfinished");
  }
  EXPECT_EQ(read_file(file), "old");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"keep.json"});
}

TEST(FileWriter, AFullDiskIsAResourceErrorNamingTheFileAndTheOldFileStays) {
  test::TempDir dir;
  const fs::path file = dir / "tokens.tok";
  write_file_atomically(file, "old");
  // In a child: a file-size limit makes write() fail part-way (EFBIG), as a disk filling up.
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {
      4096, 4096
    };
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      FileWriter out(file, {"the token cache",
                            "Free some space, or set the data config's cache to "
                            "false."});
      out.write(std::string(1 << 16, 'x'));
      out.commit();
    } catch (const ResourceError& e) {
      const bool expected = std::string(e.what()) ==
                                "The disk is full while writing the token cache " + file.string() +
                                    ". Free some space, or set the data config's cache to false." &&
                            e.code() == kExitNoResource;
      ::_exit(expected ? 0 : 2);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: another sentence or code, 3: not a "
                                       "ResourceError";
  EXPECT_EQ(read_file(file), "old");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"tokens.tok"});
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

TEST(FileWriter, TemporaryFilesAreKnownByName) {
  EXPECT_TRUE(is_temporary_file("step-4.pt.tmp.1234.98765"));
  EXPECT_TRUE(is_temporary_file("/some/dir/a.tmp.json.tmp.7.1"));
  for (const char* other :
       {"step-4.pt", "a.tmp.x.1", "a.tmp.12", "a.tmp.12.", ".tmp.1.2", "a.tmp..1", "a.tmp.1.2x"}) {
    EXPECT_FALSE(is_temporary_file(other)) << other;
  }
}

TEST(FileWriter, OnlyTheTemporariesOfGoneWritersAreRemoved) {
  test::TempDir dir;
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(gone, &status, 0), gone);
  const std::string dead = std::to_string(gone), alive = std::to_string(::getppid());
  for (const std::string& name : {std::string("c.tok"), "c.tok.tmp." + dead + ".1",
                                  "c.tok.tmp." + alive + ".2", "d.tok.tmp." + dead + ".3"}) {
    write_file_atomically(dir / name, "x");
  }
  remove_abandoned_temporaries(dir / "c.tok");
  std::vector<std::string> expected{"c.tok", "c.tok.tmp." + alive + ".2",
                                    "d.tok.tmp." + dead + ".3"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names_in(dir.path()), expected);
}

}  // namespace
}  // namespace mmlab
