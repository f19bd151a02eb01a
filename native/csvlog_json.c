/*
 * The log pipe's fast path: PostgreSQL csvlog records straight to CNPG-shaped JSON lines, in C.
 *
 * Why native: under log_statement = all PostgreSQL logs tens of thousands of records a second, and every cycle pgim
 * spends on them is taken from PostgreSQL on the same cores. The same loop in JavaScript cost ~4 us a record in
 * place; here it is a plain byte loop.
 *
 * It takes the common case only, and hands everything else back to the JavaScript string path
 * (src/log/csvlog.ts), which handles every case: a record with a byte >= 0x80, a field count other than 23, 24 or
 * 26, or a pgaudit message. The property tests in test/unit/csvlog.test.ts pin the two to the same JSON for any
 * input and any chunk boundaries.
 *
 * Input is untrusted text (statements are logged verbatim): every read is bounded by the input's length and every
 * write by the output's; a record that does not fit is reported, never truncated.
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#define MAX_FIELDS 32
#define MAX_KEY 64
/* Room kept free for one step: the longest key, or one escaped byte (\u00XX), or the record's end. */
#define STEP_ROOM (MAX_KEY + 8)

enum { RESULT_END = 0, RESULT_SLOW = 1, RESULT_FULL = 2 };

static unsigned char keys[MAX_FIELDS][MAX_KEY];       /* "name":"  */
static unsigned char keys_after[MAX_FIELDS][MAX_KEY]; /* ,"name":" */
static size_t key_length[MAX_FIELDS];
static size_t field_names = 0;
static size_t message_index = SIZE_MAX;
static uint32_t valid_counts = 0; /* bit n: a record of n fields is csvlog */
static unsigned char plain[256]; /* bytes copied as they are in any field: printable ASCII but '"', '\\' and ',' */
static const unsigned char audit_prefix[] = "AUDIT: ";
/*
 * The text whose presence in a line means the line must go through redaction (src/log/redact.ts: an LDAP bind
 * password option). Its last byte is taken out of `plain`, so every occurrence of that byte in a field is checked
 * against the output just written; the caller learns whether any converted line may hold it, and only then scans.
 */
static unsigned char watch[MAX_KEY];
static size_t watch_length = 0;
static const unsigned char hex_digits[] = "0123456789abcdef";

static int get_buffer(napi_env env, napi_value value, unsigned char **data, size_t *length) {
  void *raw = NULL;
  if (napi_get_buffer_info(env, value, &raw, length) != napi_ok) return 0;
  *data = raw;
  return 1;
}

/* csvSetFieldNames(names: string[], messageIndex: number, fieldCounts: number[], watch: string) */
napi_value csv_set_field_names(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t names = 0, counts = 0, message = 0;
  char watched[MAX_KEY];
  size_t watched_length = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || napi_get_value_string_utf8(env, argv[3], watched, sizeof watched, &watched_length) != napi_ok ||
      watched_length == 0 || watched_length + 1 >= MAX_KEY) {
    napi_throw_type_error(env, NULL, "csvSetFieldNames(names, messageIndex, fieldCounts, watch): watch is a short non-empty string");
    return NULL;
  }
  for (size_t i = 0; i < watched_length; i++) {
    unsigned char byte = (unsigned char)watched[i];
    if (byte <= 0x20 || byte >= 0x7f || byte == '"' || byte == '\\' || byte == ',') {
      napi_throw_type_error(env, NULL, "csvSetFieldNames: watch holds printable ASCII only, no quote, backslash or comma");
      return NULL;
    }
  }
  if ( napi_get_array_length(env, argv[0], &names) != napi_ok || names > MAX_FIELDS ||
      napi_get_value_uint32(env, argv[1], &message) != napi_ok || message >= names ||
      napi_get_array_length(env, argv[2], &counts) != napi_ok) {
    napi_throw_type_error(env, NULL, "csvSetFieldNames(names, messageIndex, fieldCounts): at most 32 names");
    return NULL;
  }
  uint32_t valid = 0;
  for (uint32_t i = 0; i < counts; i++) {
    napi_value item;
    uint32_t count = 0;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok || napi_get_value_uint32(env, item, &count) != napi_ok || count >= 32) {
      napi_throw_type_error(env, NULL, "csvSetFieldNames: field counts are integers below 32");
      return NULL;
    }
    valid |= 1u << count;
  }
  for (uint32_t i = 0; i < names; i++) {
    napi_value item;
    char name[MAX_KEY];
    size_t length = 0;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok ||
        napi_get_value_string_utf8(env, item, name, sizeof name, &length) != napi_ok || length + 5 > MAX_KEY) {
      napi_throw_type_error(env, NULL, "csvSetFieldNames: names are strings shorter than 59 bytes");
      return NULL;
    }
    keys[i][0] = '"';
    memcpy(keys[i] + 1, name, length);
    memcpy(keys[i] + 1 + length, "\":\"", 3);
    keys_after[i][0] = ',';
    memcpy(keys_after[i] + 1, keys[i], length + 4);
    key_length[i] = length + 4;
  }
  for (int byte = 0x20; byte < 0x80; byte++) plain[byte] = byte != '"' && byte != '\\' && byte != ',';
  memcpy(watch, watched, watched_length);
  watch_length = watched_length;
  plain[watch[watch_length - 1]] = 0;
  field_names = names;
  message_index = message;
  valid_counts = valid;
  return NULL;
}

/* JSON.stringify's escape of a control character: the short form where JSON has one, \u00XX otherwise. */
static size_t escape_control(unsigned char *out, size_t pos, unsigned char byte) {
  static const unsigned char shorts[32] = {[0x08] = 'b', [0x09] = 't', [0x0a] = 'n', [0x0c] = 'f', [0x0d] = 'r'};
  out[pos++] = '\\';
  if (shorts[byte] != 0) {
    out[pos++] = shorts[byte];
    return pos;
  }
  out[pos++] = 'u';
  out[pos++] = '0';
  out[pos++] = '0';
  out[pos++] = hex_digits[byte >> 4];
  out[pos++] = hex_digits[byte & 0xf];
  return pos;
}

typedef struct {
  int result;
  size_t next; /* input position after the record's newline */
  size_t pos;  /* output position after the record's line */
} record_end;

/* One record from `start`, written at `out_start`. RESULT_END with next == 0: no newline yet (a partial record). */
static record_end convert_record(const unsigned char *in, size_t in_length, size_t start, unsigned char *out,
                                 size_t out_length, size_t out_start, const unsigned char *prefix, size_t prefix_length,
                                 uint32_t *watched) {
  record_end end = {RESULT_FULL, start, out_start};
  if (out_start + prefix_length + STEP_ROOM > out_length) return end;
  size_t pos = out_start;
  memcpy(out + pos, prefix, prefix_length);
  pos += prefix_length;
  size_t field = 0, written = 0;
  int fast = 1, quoted = 0;
  size_t field_out = pos;
  memcpy(out + pos, keys[0], key_length[0]);
  pos += key_length[0];
  size_t content_start = pos;
  for (size_t i = start; i < in_length; i++) {
    /* Runs of plain bytes (most of a record) are copied at once; the byte after a run takes the steps below. */
    if (plain[in[i]]) {
      size_t run = i + 1;
      while (run < in_length && plain[in[run]]) run++;
      if (fast) {
        if (pos + (run - i) + STEP_ROOM > out_length) return end;
        memcpy(out + pos, in + i, run - i);
        pos += run - i;
      }
      i = run;
      if (i >= in_length) break;
    }
    unsigned char byte = in[i];
    if (quoted) {
      if (byte == '"') {
        /* A doubled quote is one quote of content; a single one ends the quoted section. */
        if (i + 1 >= in_length || in[i + 1] != '"') {
          quoted = 0;
          continue;
        }
        i++;
      }
    } else if (byte == '"') {
      quoted = 1;
      continue;
    } else if (byte == ',' || byte == '\n') {
      if (fast) {
        /* Close the field: an empty one is left out, as the string path does. */
        if (pos == content_start) {
          pos = field_out;
        } else {
          out[pos++] = '"';
          written++;
        }
      }
      field++;
      if (byte == '\n') {
        end.next = i + 1;
        if (!fast || field >= 32 || !(valid_counts & (1u << field))) {
          end.result = RESULT_SLOW;
          return end;
        }
        memcpy(out + pos, "}}\n", 3);
        end.result = RESULT_END;
        end.pos = pos + 3;
        return end;
      }
      if (!fast) continue;
      if (field >= field_names) {
        fast = 0;
        continue;
      }
      /* A pgaudit record (message `AUDIT: ...`, always quoted) gets its own shape: the string path builds it. */
      if (field == message_index && i + 2 + 7 <= in_length && memcmp(in + i + 2, audit_prefix, 7) == 0) {
        fast = 0;
        continue;
      }
      if (pos + STEP_ROOM > out_length) return end;
      field_out = pos;
      const unsigned char *key = written == 0 ? keys[field] : keys_after[field];
      size_t length = written == 0 ? key_length[field] : key_length[field] + 1;
      memcpy(out + pos, key, length);
      pos += length;
      content_start = pos;
      continue;
    }
    if (!fast) continue;
    if (byte >= 0x80) {
      fast = 0;
      continue;
    }
    if (pos + STEP_ROOM > out_length) return end;
    if (byte >= 0x20 && byte != '"' && byte != '\\') {
      out[pos++] = byte;
      /* The watch's last byte is not `plain`, so each one comes here: did the output just end with the watch? */
      if (byte == watch[watch_length - 1] && pos >= watch_length && memcmp(out + pos - watch_length, watch, watch_length) == 0) {
        *watched = 1;
      }
    } else if (byte >= 0x20) {
      out[pos++] = '\\';
      out[pos++] = byte;
    } else {
      pos = escape_control(out, pos, byte);
    }
  }
  end.result = RESULT_END;
  end.next = 0;
  return end;
}

/*
 * csvConvert(input, start, out, outPos, prefix, state: Uint32Array(5)): converts records from input[start] into
 * out[outPos] until one of: no complete record left (state = [start of the rest, outPos, 0]); a record for the
 * string path (state = [its start, outPos, 1, after its newline]); out has no room for the next record
 * (state = [its start, outPos, 2]). Lines written stay before outPos. state[4] is 1 when a line written by this
 * call may hold the watched text (never 0 when one does), 0 otherwise.
 */
napi_value csv_convert(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  unsigned char *in = NULL, *out = NULL, *prefix = NULL;
  size_t in_length = 0, out_length = 0, prefix_length = 0, state_length = 0;
  uint32_t start = 0, out_pos = 0;
  napi_typedarray_type state_type;
  void *state_data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6 || field_names == 0 || !get_buffer(env, argv[0], &in, &in_length) ||
      napi_get_value_uint32(env, argv[1], &start) != napi_ok || !get_buffer(env, argv[2], &out, &out_length) ||
      napi_get_value_uint32(env, argv[3], &out_pos) != napi_ok || !get_buffer(env, argv[4], &prefix, &prefix_length) ||
      napi_get_typedarray_info(env, argv[5], &state_type, &state_length, &state_data, NULL, NULL) != napi_ok ||
      state_type != napi_uint32_array || state_length < 5 || start > in_length || out_pos > out_length) {
    napi_throw_type_error(env, NULL, "csvConvert(input, start, out, outPos, prefix, state): csvSetFieldNames first; buffers and positions in range");
    return NULL;
  }
  uint32_t *state = state_data;
  size_t at = start, pos = out_pos;
  state[4] = 0;
  for (;;) {
    if (at >= in_length) {
      state[2] = RESULT_END;
      break;
    }
    record_end end = convert_record(in, in_length, at, out, out_length, pos, prefix, prefix_length, &state[4]);
    if (end.result == RESULT_END && end.next == 0) {
      state[2] = RESULT_END;
      break;
    }
    if (end.result != RESULT_END) {
      state[2] = (uint32_t)end.result;
      state[3] = (uint32_t)end.next;
      break;
    }
    at = end.next;
    pos = end.pos;
  }
  state[0] = (uint32_t)at;
  state[1] = (uint32_t)pos;
  return NULL;
}
