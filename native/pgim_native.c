/*
 * pgim's native piece: the six Linux calls Node does not offer, and the log pipe's converter (csvlog_json.c).
 *   setChildSubreaper()  prctl(PR_SET_CHILD_SUBREAPER): orphaned postgres processes come back to pgim.
 *   reap(pid)            waitpid(pid, WNOHANG) on one specific PID, never wait(-1): it cannot steal the exit
 *                        status of a child that Node (libuv) is waiting for.
 *   mkfifo(path, mode)   the log pipe PostgreSQL's logging collector writes into.
 *   setPipeSize(fd, n)   fcntl(F_SETPIPE_SZ): room in that pipe, so pgim can read it in batches without making
 *                        PostgreSQL's logging collector wait.
 *   trimMemory()         malloc_trim(0): hands back to the kernel the free pages glibc keeps after start-up
 *                        (module loading, optimising compiler threads), which would otherwise stay in pgim's RSS.
 *   ignoreRealtimeSignals()  a no-op handler for SIGRTMIN..SIGRTMAX (default: terminate), which Node cannot
 *                        listen for: no signal pgim does not use may end it.
 * Built from source at install with the system C compiler against Node's own headers (scripts/build-native.sh):
 * no node-gyp, no download, nothing prebuilt.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <node_api.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

static napi_value throw_errno(napi_env env, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_CHILD_SUBREAPER)");
  napi_value result;
  napi_get_boolean(env, 1, &result);
  return result;
}

/* Returns null while the process runs (or is not our child), else {pid, code, signal}. */
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t pid = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "reap(pid): pid must be a positive integer");
    return NULL;
  }
  int status = 0;
  pid_t done = waitpid((pid_t)pid, &status, WNOHANG | __WALL);
  napi_value result;
  if (done <= 0) {
    if (done < 0 && errno != ECHILD) return throw_errno(env, "waitpid");
    napi_get_null(env, &result);
    return result;
  }
  napi_value v_pid, v_code, v_signal;
  napi_create_object(env, &result);
  napi_create_int32(env, done, &v_pid);
  napi_set_named_property(env, result, "pid", v_pid);
  if (WIFEXITED(status)) napi_create_int32(env, WEXITSTATUS(status), &v_code); else napi_get_null(env, &v_code);
  if (WIFSIGNALED(status)) napi_create_int32(env, WTERMSIG(status), &v_signal); else napi_get_null(env, &v_signal);
  napi_set_named_property(env, result, "code", v_code);
  napi_set_named_property(env, result, "signal", v_signal);
  return result;
}

static napi_value make_fifo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[4096];
  size_t length = 0;
  uint32_t mode = 0600;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) != napi_ok || length >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "mkfifo(path, mode): path must be a string shorter than 4095 bytes");
    return NULL;
  }
  if (argc > 1) napi_get_value_uint32(env, argv[1], &mode);
  if (mkfifo(path, (mode_t)mode) != 0) return throw_errno(env, "mkfifo");
  return NULL;
}

static napi_value set_pipe_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  int32_t size = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &size) != napi_ok || fd < 0 || size <= 0) {
    napi_throw_type_error(env, NULL, "setPipeSize(fd, bytes): a descriptor and a positive size");
    return NULL;
  }
  int granted = fcntl(fd, F_SETPIPE_SZ, size);
  if (granted < 0) return throw_errno(env, "fcntl(F_SETPIPE_SZ)");
  napi_value result;
  napi_create_int32(env, granted, &result);
  return result;
}

static napi_value trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

static void ignore_signal(int signo) { (void)signo; }

/*
 * Only signals still at their default get the handler (nothing Node, libuv or V8 set is replaced). A handler, unlike
 * SIG_IGN, is reset by exec, so postgres and the tools pgim runs start with the default dispositions.
 */
static napi_value ignore_realtime_signals(napi_env env, napi_callback_info info) {
  (void)info;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = ignore_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  int32_t handled = 0;
  for (int signo = SIGRTMIN; signo <= SIGRTMAX; signo++) {
    struct sigaction current;
    if (sigaction(signo, NULL, &current) != 0) continue;
    if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) continue;
    if (sigaction(signo, &action, NULL) == 0) handled++;
  }
  napi_value result;
  napi_create_int32(env, handled, &result);
  return result;
}

napi_value csv_set_field_names(napi_env env, napi_callback_info info);
napi_value csv_convert(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setChildSubreaper", NULL, set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkfifo", NULL, make_fifo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setPipeSize", NULL, set_pipe_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"trimMemory", NULL, trim_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ignoreRealtimeSignals", NULL, ignore_realtime_signals, NULL, NULL, NULL, napi_enumerable, NULL},
      {"csvSetFieldNames", NULL, csv_set_field_names, NULL, NULL, NULL, napi_enumerable, NULL},
      {"csvConvert", NULL, csv_convert, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
