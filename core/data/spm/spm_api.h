// SPDX-License-Identifier: GPL-3.0-or-later
// The C interface of mmlab_spm, the module that wraps SentencePiece. Debian's SentencePiece carries
// a private copy of protobuf-lite (3.14) whose symbols clash with the full libprotobuf (3.21) that
// Debian's LibTorch loads: linked into one process, either LibTorch's protobuf crashes at start-up
// or SentencePiece's version check fails. So SentencePiece lives in this module, which mmlab_data
// opens with dlopen(RTLD_LOCAL | RTLD_DEEPBIND): it and its protobuf copy bind only to each other.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

/// Receives the ids of one encode call.
typedef void (*mmlab_spm_ids_sink)(void* ctx, const int32_t* ids, size_t n);
/// Receives bytes (decoded text, or a serialized model).
typedef void (*mmlab_spm_bytes_sink)(void* ctx, const char* data, size_t n);

/// Loads a serialized model; returns a handle, or null with a message in err.
typedef void* (*mmlab_spm_load_fn)(const char* model, size_t size, char* err, size_t err_size);
typedef void (*mmlab_spm_free_fn)(void* handle);
typedef int (*mmlab_spm_piece_size_fn)(void* handle);
typedef int (*mmlab_spm_eos_id_fn)(void* handle);
/// 0 on success, else -1 with a message in err.
typedef int (*mmlab_spm_encode_fn)(void* handle, const char* text, size_t n,
                                   mmlab_spm_ids_sink sink, void* ctx, char* err, size_t err_size);
typedef int (*mmlab_spm_decode_fn)(void* handle, const int32_t* ids, size_t n,
                                   mmlab_spm_bytes_sink sink, void* ctx, char* err,
                                   size_t err_size);
/// Trains on `lines` with trainer flags `keys[i]=values[i]`; the serialized model goes to sink.
typedef int (*mmlab_spm_train_fn)(const char* const* keys, const char* const* values, size_t n_args,
                                  const char* const* lines, const size_t* lengths, size_t n_lines,
                                  uint32_t seed, mmlab_spm_bytes_sink sink, void* ctx, char* err,
                                  size_t err_size);
}
