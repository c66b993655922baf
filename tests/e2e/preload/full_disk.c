// SPDX-License-Identifier: GPL-3.0-or-later
// A full disk for one folder, for tests: loaded with LD_PRELOAD into an mmlab process, it makes
// every write that would grow a file under $MMLAB_FULL_DISK_DIR beyond $MMLAB_FULL_DISK_BYTES of
// new data fail with ENOSPC, as a full filesystem does. SQLite (and everything else) then meets
// the same errno through the same calls as on a real full disk, without needing a small
// filesystem to be mounted (which needs root).
//
// Space is counted per file as its highest written offset (a rewrite of written bytes needs no
// new space, as on a real filesystem); truncating or deleting a file gives its space back. A
// file that existed before counts from its size at first sight.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
  dev_t dev;
  ino_t ino;
  off_t high;  // bytes of the file counted as allocated
} Tracked;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static Tracked g_files[256];
static int g_count;
static long long g_free = -1;  // bytes left; -1 until read from the environment
static char g_dir[PATH_MAX];

static void init_locked(void) {
  if (g_free >= 0) return;
  const char* dir = getenv("MMLAB_FULL_DISK_DIR");
  const char* bytes = getenv("MMLAB_FULL_DISK_BYTES");
  g_free = bytes ? atoll(bytes) : LLONG_MAX;
  if (dir) snprintf(g_dir, sizeof g_dir, "%s/", dir);
}

static int under_dir(const char* path) {
  return g_dir[0] != '\0' && strncmp(path, g_dir, strlen(g_dir)) == 0;
}

static int fd_under_dir(int fd) {
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return under_dir(target);
}

static Tracked* tracked(const struct stat* st) {
  for (int i = 0; i < g_count; ++i) {
    if (g_files[i].dev == st->st_dev && g_files[i].ino == st->st_ino) return &g_files[i];
  }
  if (g_count == (int)(sizeof g_files / sizeof g_files[0])) return NULL;
  Tracked* t = &g_files[g_count++];
  t->dev = st->st_dev;
  t->ino = st->st_ino;
  t->high = st->st_size;
  return t;
}

// 0 when a write of [offset, offset + count) to fd fits (and charges it), -1 (ENOSPC) when not.
static int charge(int fd, off_t offset, size_t count) {
  int result = 0;
  pthread_mutex_lock(&g_lock);
  init_locked();
  struct stat st;
  if (fd_under_dir(fd) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    Tracked* t = tracked(&st);
    const off_t end = offset + (off_t)count;
    if (t != NULL && end > t->high) {
      const long long growth = (long long)(end - t->high);
      if (growth > g_free) {
        result = -1;
      } else {
        g_free -= growth;
        t->high = end;
      }
    }
  }
  pthread_mutex_unlock(&g_lock);
  return result;
}

static void refund_to(const struct stat* st, off_t size) {
  pthread_mutex_lock(&g_lock);
  init_locked();
  Tracked* t = tracked(st);
  if (t != NULL && t->high > size) {
    g_free += (long long)(t->high - size);
    t->high = size;
  }
  pthread_mutex_unlock(&g_lock);
}

// The next definition of `name` (libc's), looked up once.
#define REAL(name, ret, params)    \
  static ret(*real_##name) params; \
  if (!real_##name) *(void**)(&real_##name) = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void* buf, size_t count) {
  REAL(write, ssize_t, (int, const void*, size_t));
  off_t at = lseek(fd, 0, SEEK_CUR);
  if (at >= 0 && charge(fd, at, count) != 0) {
    errno = ENOSPC;
    return -1;
  }
  return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  REAL(pwrite, ssize_t, (int, const void*, size_t, off_t));
  if (charge(fd, offset, count) != 0) {
    errno = ENOSPC;
    return -1;
  }
  return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  REAL(pwrite64, ssize_t, (int, const void*, size_t, off64_t));
  if (charge(fd, (off_t)offset, count) != 0) {
    errno = ENOSPC;
    return -1;
  }
  return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev, ssize_t, (int, const struct iovec*, int));
  size_t count = 0;
  for (int i = 0; i < n; ++i) count += iov[i].iov_len;
  off_t at = lseek(fd, 0, SEEK_CUR);
  if (at >= 0 && charge(fd, at, count) != 0) {
    errno = ENOSPC;
    return -1;
  }
  return real_writev(fd, iov, n);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
  REAL(fallocate, int, (int, int, off_t, off_t));
  if (charge(fd, offset, (size_t)len) != 0) {
    errno = ENOSPC;
    return -1;
  }
  return real_fallocate(fd, mode, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
  REAL(posix_fallocate, int, (int, off_t, off_t));
  if (charge(fd, offset, (size_t)len) != 0) return ENOSPC;
  return real_posix_fallocate(fd, offset, len);
}

// Growing a file with ftruncate leaves a hole (no space used until written); shrinking frees.
int ftruncate(int fd, off_t length) {
  REAL(ftruncate, int, (int, off_t));
  struct stat st;
  // Seen before truncating, so that a file first met here counts from its old size.
  const int inside = fd_under_dir(fd) && fstat(fd, &st) == 0;
  if (inside) refund_to(&st, st.st_size);
  int rc = real_ftruncate(fd, length);
  if (rc == 0 && inside) refund_to(&st, length);
  return rc;
}

int ftruncate64(int fd, off64_t length) {
  return ftruncate(fd, (off_t)length);
}

int unlink(const char* path) {
  REAL(unlink, int, (const char*));
  struct stat st;
  const int known = path[0] == '/' && stat(path, &st) == 0;
  int rc = real_unlink(path);
  if (rc == 0 && known) {
    pthread_mutex_lock(&g_lock);
    init_locked();
    const int inside = under_dir(path);
    pthread_mutex_unlock(&g_lock);
    if (inside) refund_to(&st, 0);
  }
  return rc;
}
