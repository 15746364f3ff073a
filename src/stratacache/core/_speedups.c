/* Compiled hot paths, all optional (the package runs the same logic in Python without them):
 * the inner loops of the TinyLFU policy -- the frequency sketch's increment and estimate, and
 * the replay of buffered cache hits (TinyLFUPolicy.on_access_many) -- and, at the end of the
 * file, the hit path of the memory store's fused get (FusedGet).
 *
 * Why C: a cache hit on the default policy costs one sketch increment and one region update,
 * which in Python is ~1 us of interpreter work per hit (about 4x a cachetools lookup). These
 * functions do the same steps on the policy's own Python data (the sketch's bytearray, the
 * regions' OrderedDicts), so the pure-Python code in sketch.py/tinylfu.py stays the reference:
 * tests/test_speedups.py drives both over the same operations and demands identical state.
 * Everything rare (a sketch halving, a promotion to protected, a hill-climber step) is handed
 * back to Python, which keeps this file small.
 *
 * The counter indexes must equal Python's, which hashes the tuple (key, salt): pair_hash()
 * below is CPython's tuple hash (Objects/tupleobject.c, unchanged since 3.8) for two items,
 * computed without building the tuple. Only 64-bit hashes are supported; elsewhere the build
 * fails and the package uses its pure-Python code (the extension is optional).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h> /* offsetof */
#include "structmember.h" /* T_OBJECT_EX, READONLY before 3.12 */

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_READONLY READONLY
#endif

#if SIZEOF_PY_HASH_T < 8
#error "stratacache speedups need 64-bit hashes; the pure-Python policies are used instead"
#endif

#define XXPRIME_1 ((Py_uhash_t)11400714785074694791ULL)
#define XXPRIME_2 ((Py_uhash_t)14029467366897019727ULL)
#define XXPRIME_5 ((Py_uhash_t)2870177450012600261ULL)
#define XXROTATE(x) (((x) << 31) | ((x) >> 33))
#define COUNTER_MAX 15

#include "_linkedmap.h" /* the ordered map of the TinyLFU regions, and the map_* helpers */
#include "_storelock.h" /* the memory store's lock, taken and given here without a call */

/* hash((a_obj, b_obj)) given hash(a_obj) and hash(b_obj). */
static inline Py_hash_t
pair_hash(Py_hash_t a, Py_hash_t b)
{
    Py_uhash_t acc = XXPRIME_5;
    acc += (Py_uhash_t)a * XXPRIME_2;
    acc = XXROTATE(acc);
    acc *= XXPRIME_1;
    acc += (Py_uhash_t)b * XXPRIME_2;
    acc = XXROTATE(acc);
    acc *= XXPRIME_1;
    acc += ((Py_uhash_t)2) ^ (XXPRIME_5 ^ 3527539UL);
    if (acc == (Py_uhash_t)-1) {
        return 1546275796;
    }
    return (Py_hash_t)acc;
}

/* The argument count check of a METH_FASTCALL function (the private _PyArg_CheckPositional is
 * not part of the stable headers). */
static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, expected, nargs);
        return 0;
    }
    return 1;
}

/* The sketch as the Python side describes it: a bytearray of 4 rows of width = mask + 1. */
typedef struct {
    unsigned char *table;
    Py_ssize_t mask;
    Py_ssize_t width;
    Py_hash_t salt;
    PyObject *owner; /* the table, when the view holds a reference to it (sketch_view_of) */
} sketch_view;

/* Fill `view` from (table, salt, mask); -1 with an exception set when they do not fit. */
static int
sketch_view_init(sketch_view *view, PyObject *table, PyObject *salt, PyObject *mask)
{
    if (!PyByteArray_Check(table)) {
        PyErr_Format(PyExc_TypeError, "sketch table must be a bytearray, got %.100s",
                     Py_TYPE(table)->tp_name);
        return -1;
    }
    Py_ssize_t m = PyLong_AsSsize_t(mask);
    if (m == -1 && PyErr_Occurred()) {
        return -1;
    }
    /* The width must be a power of two whose four rows fit in the table. */
    if (m < 0 || (m & (m + 1)) != 0 || PyByteArray_GET_SIZE(table) < 4 * (m + 1)) {
        PyErr_Format(PyExc_ValueError,
                     "sketch mask %zd does not describe a table of %zd bytes", m,
                     PyByteArray_GET_SIZE(table));
        return -1;
    }
    Py_hash_t s = PyObject_Hash(salt);
    if (s == -1) {
        return -1;
    }
    view->table = (unsigned char *)PyByteArray_AS_STRING(table);
    view->mask = m;
    view->width = m + 1;
    view->salt = s;
    view->owner = NULL;
    return 0;
}

/* The table offsets of key's four counters (double hashing, as FrequencySketch does); -1 on
 * error (a key's __hash__ may raise). */
static inline int
sketch_counters(const sketch_view *v, PyObject *key, Py_ssize_t offsets[4])
{
    Py_hash_t kh = PyObject_Hash(key);
    if (kh == -1) {
        return -1;
    }
    Py_hash_t h = pair_hash(kh, v->salt);
    Py_ssize_t mask = v->mask;
    Py_ssize_t a = (Py_ssize_t)((Py_uhash_t)h & (Py_uhash_t)mask);
    /* Python's h >> 33 is an arithmetic shift; the mask keeps only bits it cannot sign-fill. */
    Py_ssize_t b = (Py_ssize_t)(((Py_uhash_t)h >> 33) & (Py_uhash_t)mask) | 1;
    for (int row = 0; row < 4; row++) {
        offsets[row] = row * v->width + a;
        a = (a + b) & mask;
    }
    return 0;
}

/* FrequencySketch.increment's counter update; 1 if a counter changed, 0 if not, -1 on error. */
static inline int
sketch_add(const sketch_view *v, PyObject *key)
{
    Py_ssize_t offsets[4];
    if (sketch_counters(v, key, offsets) < 0) {
        return -1;
    }
    int added = 0;
    for (int row = 0; row < 4; row++) {
        unsigned char *c = v->table + offsets[row];
        if (*c < COUNTER_MAX) {
            *c += 1;
            added = 1;
        }
    }
    return added;
}

/* FrequencySketch.frequency: the smallest of key's four counters; -1 on error. */
static int
sketch_estimate(const sketch_view *v, PyObject *key)
{
    Py_ssize_t offsets[4];
    if (sketch_counters(v, key, offsets) < 0) {
        return -1;
    }
    int low = COUNTER_MAX + 1;
    for (int row = 0; row < 4; row++) {
        int c = v->table[offsets[row]];
        if (c < low) {
            low = c;
        }
    }
    return low;
}

PyDoc_STRVAR(sketch_increment_doc,
"sketch_increment(table, key, salt, mask) -> bool\n\n"
"Add one to each of key's four counters that is below 15; True if any changed.");

static PyObject *
sketch_increment(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("sketch_increment", nargs, 4)) {
        return NULL;
    }
    sketch_view view;
    if (sketch_view_init(&view, args[0], args[2], args[3]) < 0) {
        return NULL;
    }
    int added = sketch_add(&view, args[1]);
    if (added < 0) {
        return NULL;
    }
    return PyBool_FromLong(added);
}

PyDoc_STRVAR(sketch_frequency_doc,
"sketch_frequency(table, key, salt, mask) -> int\n\n"
"The smallest of key's four counters: its estimated recent frequency, 0 to 15.");

static PyObject *
sketch_frequency(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("sketch_frequency", nargs, 4)) {
        return NULL;
    }
    sketch_view view;
    if (sketch_view_init(&view, args[0], args[2], args[3]) < 0) {
        return NULL;
    }
    int low = sketch_estimate(&view, args[1]);
    if (low < 0) {
        return NULL;
    }
    return PyLong_FromLong(low);
}

/* `key in container`, through the dict fast path when the container is a dict (or subclass). */
static inline int
contains(PyObject *container, PyObject *key)
{
    if (LinkedMap_Ready(container)) {
        return PyDict_Contains(((LinkedMap *)container)->index, key);
    }
    if (PyDict_Check(container)) {
        return PyDict_Contains(container, key);
    }
    return PySequence_Contains(container, key);
}

PyDoc_STRVAR(tinylfu_replay_doc,
"tinylfu_replay(keys, start, tracked, protected, window, move_protected, move_window,\n"
"               table, salt, mask, budget, left) -> (index, counted, hits, stopped)\n\n"
"Replay the hits keys[start:] into a TinyLFU policy, as TinyLFUPolicy.on_access_many does:\n"
"a key not in `tracked` is skipped; otherwise its sketch counters are incremented and it is\n"
"moved to the recent end of `protected` or `window`, whichever holds it.\n\n"
"It stops early, for Python to do the rare steps, with `stopped`:\n"
"1: keys[index] was counted in the sketch but not moved, because the sketch is due a halving\n"
"   (`counted` reached `budget`) or the key is in neither region (it is in probation);\n"
"2: keys[index - 1] made the hits reach `left`: the hill climber is due;\n"
"0: every key was replayed (index == len(keys)).\n"
"`counted` is the number of increments that changed the sketch, `hits` the keys moved.");

static PyObject *
tinylfu_replay(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("tinylfu_replay", nargs, 12)) {
        return NULL;
    }
    PyObject *keys = args[0];
    PyObject *tracked = args[2];
    PyObject *protected = args[3];
    PyObject *window = args[4];
    PyObject *move_protected = args[5];
    PyObject *move_window = args[6];
    if (!PyList_Check(keys)) {
        PyErr_Format(PyExc_TypeError, "keys must be a list, got %.100s", Py_TYPE(keys)->tp_name);
        return NULL;
    }
    if (!(PyDict_Check(protected) || LinkedMap_Check(protected)) || !(PyDict_Check(window) || LinkedMap_Check(window))) {
        PyErr_SetString(PyExc_TypeError, "protected and window must be dicts or LinkedMaps");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    sketch_view view;
    if (sketch_view_init(&view, args[7], args[8], args[9]) < 0) {
        return NULL;
    }
    Py_ssize_t budget = PyLong_AsSsize_t(args[10]);
    if (budget == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t left = PyLong_AsSsize_t(args[11]);
    if (left == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t counted = 0;
    Py_ssize_t hits = 0;
    int stopped = 0;
    Py_ssize_t i = start < 0 ? 0 : start;
    /* The list may change under a callback (move_to_end is C, but a key's __eq__ may not be):
     * re-read its size and take a reference to each key while it is used. */
    for (; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        Py_INCREF(key);
        int r = contains(tracked, key);
        if (r <= 0) {
            Py_DECREF(key);
            if (r < 0) {
                return NULL;
            }
            continue;
        }
        int added = sketch_add(&view, key);
        if (added < 0) {
            Py_DECREF(key);
            return NULL;
        }
        if (added) {
            counted++;
            if (counted >= budget) {
                Py_DECREF(key);
                stopped = 1;
                break;
            }
        }
        PyObject *move = NULL, *region = NULL;
        r = contains(protected, key);
        if (r > 0) {
            move = move_protected;
            region = protected;
        }
        else if (r == 0) {
            r = contains(window, key);
            if (r > 0) {
                move = move_window;
                region = window;
            }
        }
        if (r < 0) {
            Py_DECREF(key);
            return NULL;
        }
        if (move == NULL) {
            Py_DECREF(key);
            stopped = 1;
            break;
        }
        if (LinkedMap_Ready(region)) {
            /* region.move_to_end(key), without the call */
            r = map_move_to_end(region, key, 1);
            Py_DECREF(key);
            if (r < 0) {
                return NULL;
            }
        }
        else {
            PyObject *res = PyObject_CallOneArg(move, key);
            Py_DECREF(key);
            if (res == NULL) {
                return NULL;
            }
            Py_DECREF(res);
        }
        hits++;
        if (hits >= left) {
            i++;
            stopped = 2;
            break;
        }
    }
    return Py_BuildValue("(nnni)", i, counted, hits, stopped);
}

/* ---------------------------------------------------------------------------------------
 * FusedGet: the hit path of MemoryStore.fused_get in C.
 *
 * MemoryStore.fused_get builds a Python closure that serves Cache.get in one frame. This type
 * answers the two commonest cases of that closure without running Python: a hit on a plain
 * live entry (no sliding expiry, not a collection) and, for policies that do not count misses,
 * a miss. Everything else -- hooks, a non-str key, keyword arguments, an expired, sliding or
 * collection entry, a miss a policy must hear about, and every call on which a counter reaches
 * a multiple of `mask + 1` (the closure's "tick": latency sample, read-buffer drain) -- is
 * passed, untouched, to that closure (`slow`), which does the whole lookup again its own way.
 * So the closure stays the one definition of what get does, and this is a shortcut through
 * its commonest path: the same reads, the same counters, the same order of effects.
 *
 * Atomicity is the closure's, only stronger: this code holds the GIL from the lookup to the
 * counter update except inside clock() and access(), exactly where the closure calls them.
 */

/* A __slots__ attribute read and written at its offset in the object, the way CPython's own
 * specialized LOAD_ATTR_SLOT does: the generic PyObject_GetAttr costs ~160 instructions, this
 * a handful. It is used only on an object whose type is exactly `type` (checked per call) and
 * only when the name is a plain writable object slot of that type (checked once); otherwise,
 * and for an unset slot, the generic calls are used. */
typedef struct {
    PyTypeObject *type; /* borrowed: the object passed to slot_ref_init holds it */
    Py_ssize_t offset;  /* -1: use the generic calls */
    PyObject *name;
} slot_ref;

static void
slot_ref_init_type(slot_ref *ref, PyTypeObject *type, PyObject *name)
{
    ref->type = type;
    ref->offset = -1;
    ref->name = name;
    PyObject *descr = PyObject_GetAttr((PyObject *)ref->type, name);
    if (descr == NULL) {
        PyErr_Clear();
        return;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY)) {
            ref->offset = member->offset;
        }
    }
    Py_DECREF(descr);
}

static void
slot_ref_init(slot_ref *ref, PyObject *obj, PyObject *name)
{
    slot_ref_init_type(ref, Py_TYPE(obj), name);
}

/* obj.<name> as a new reference, or NULL with an exception set. */
static inline PyObject *
slot_get(const slot_ref *ref, PyObject *obj)
{
    if (ref->offset >= 0 && Py_IS_TYPE(obj, ref->type)) {
        PyObject *v = *(PyObject **)((char *)obj + ref->offset);
        if (v != NULL) {
            return Py_NewRef(v);
        }
    }
    return PyObject_GetAttr(obj, ref->name);
}

static inline int
slot_set(const slot_ref *ref, PyObject *obj, PyObject *value)
{
    if (ref->offset >= 0 && Py_IS_TYPE(obj, ref->type)) {
        PyObject **slot = (PyObject **)((char *)obj + ref->offset);
        PyObject *old = *slot;
        *slot = Py_NewRef(value);
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, ref->name, value);
}

typedef struct {
    PyObject_HEAD
    PyObject *data;          /* the store's map: str key -> entry */
    PyObject *prefix;        /* the namespace prefix, or NULL when there is none */
    PyObject *hooks;         /* .active: any hooks registered? */
    PyObject *stats;         /* .hits / .misses */
    PyObject *store;         /* ._record_miss: None when a miss needs no policy call */
    PyObject *clock;         /* monotonic seconds */
    PyObject *access;        /* records a hit (move_to_end / read-buffer append), or NULL */
    PyObject *native_types;  /* frozenset of the collection types a plain get refuses */
    PyObject *slow;          /* the Python closure: the complete fused get */
    PyObject *lock;          /* store._lock (the store's for life): see lock_take */
    Py_ssize_t mask;
    int sliding;
    int miss_is_final;
    slot_ref active, hits, misses, value, expires; /* hooks.active, stats.hits, ... */
    PyObject *entry_type;
    vectorcallfunc vectorcall;
} FusedGet;

static PyObject *str_active, *str_hits, *str_misses, *str_value, *str_expires, *str_record_miss;
static PyObject *str_count, *str_ring, *str_bucket, *str_next, *str_prev;
static PyObject *str__lock, *str__reads, *str__drain_reads;

static int
fg_traverse(FusedGet *self, visitproc visit, void *arg)
{
    Py_VISIT(self->data);
    Py_VISIT(self->prefix);
    Py_VISIT(self->hooks);
    Py_VISIT(self->stats);
    Py_VISIT(self->store);
    Py_VISIT(self->clock);
    Py_VISIT(self->access);
    Py_VISIT(self->native_types);
    Py_VISIT(self->slow);
    Py_VISIT(self->lock);
    Py_VISIT(self->entry_type);
    return 0;
}

static int
fg_clear(FusedGet *self)
{
    Py_CLEAR(self->data);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->hooks);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->store);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->access);
    Py_CLEAR(self->native_types);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->entry_type);
    return 0;
}

static void
fg_dealloc(FusedGet *self)
{
    PyObject_GC_UnTrack(self);
    fg_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An int attribute (a counter) of obj, or -1 with an exception set. */
static Py_ssize_t
get_counter(const slot_ref *ref, PyObject *obj)
{
    PyObject *v = slot_get(ref, obj);
    if (v == NULL) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return n;
}

static int
set_counter(const slot_ref *ref, PyObject *obj, Py_ssize_t n)
{
    PyObject *v = PyLong_FromSsize_t(n);
    if (v == NULL) {
        return -1;
    }
    int r = slot_set(ref, obj, v);
    Py_DECREF(v);
    return r;
}

/* The truth of obj.<slot>: 1, 0, or -1 with an exception set. Both fused callables start
 * with slot_true(&self->active, self->hooks): a registered hook sends the call to Python. */
static int
slot_true(const slot_ref *ref, PyObject *obj)
{
    PyObject *v = slot_get(ref, obj);
    if (v == NULL) {
        return -1;
    }
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* prefix + key (a new reference); key itself when there is no prefix. */
static inline PyObject *
prefixed(PyObject *prefix, PyObject *key)
{
    return prefix != NULL ? PyUnicode_Concat(prefix, key) : Py_NewRef(key);
}

/* 1 if the entry cannot be served here (due, sliding, a collection), 0 if it can, -1 on error. */
static int
fg_needs_slow_path(FusedGet *self, PyObject *value, PyObject *expires)
{
    if (expires == Py_None) {
        return 0;
    }
    if (self->sliding) {
        return 1;
    }
    int native = PySet_Contains(self->native_types, (PyObject *)Py_TYPE(value));
    if (native != 0) {
        return native;
    }
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return -1;
    }
    int due;
    if (PyFloat_CheckExact(expires) && PyFloat_CheckExact(now)) {
        due = PyFloat_AS_DOUBLE(expires) <= PyFloat_AS_DOUBLE(now);
    }
    else {
        due = PyObject_RichCompareBool(expires, now, Py_LE);
    }
    Py_DECREF(now);
    return due;
}

static int attr_true(PyObject *dict, PyObject *obj, PyObject *name);

/* The closure's miss for a policy that counts misses (tinylfu): under the store's lock, replay
 * the buffered hits first, then record_miss(prefix + key). 0, or -1 with an exception set. */
static int
fg_record_miss(FusedGet *self, PyObject *record_miss, PyObject *key)
{
    PyObject *k = prefixed(self->prefix, key);
    if (k == NULL) {
        return -1;
    }
    if (lock_take(self->lock) < 0) {
        Py_DECREF(k);
        return -1;
    }
    PyObject *r;
    int rc = attr_true(NULL, self->store, str__reads);
    if (rc > 0) {
        r = PyObject_CallMethodNoArgs(self->store, str__drain_reads);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    if (rc == 0) {
        r = PyObject_CallOneArg(record_miss, k);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(k);
    if (lock_give(self->lock) < 0) {
        return -1;
    }
    return rc;
}

static PyObject *
fg_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FusedGet *self = (FusedGet *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || nargs < 1 || nargs > 2) {
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    PyObject *key = args[0];
    PyObject *deflt = nargs == 2 ? args[1] : Py_None;
    if (!PyUnicode_CheckExact(key)) {
        return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    int hook = slot_true(&self->active, self->hooks);
    if (hook != 0) {
        return hook < 0 ? NULL : PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    PyObject *k = prefixed(self->prefix, key);
    if (k == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->data, k);
    if (entry == NULL) {
        Py_DECREF(k);
        if (PyErr_Occurred()) {
            return NULL;
        }
        /* A non-ASCII key may hold a lone surrogate, which the facade's full get refuses
         * (InvalidKey, as on every backend); a hit is impossible for one, since set refuses it. */
        if (!self->miss_is_final || !PyUnicode_IS_ASCII(key)) {
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        }
        Py_ssize_t n = get_counter(&self->misses, self->stats);
        if (n == -1 && PyErr_Occurred()) {
            return NULL;
        }
        n += 1;
        if ((n & self->mask) == 0) {
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL); /* a tick */
        }
        PyObject *record_miss = PyObject_GetAttr(self->store, str_record_miss);
        if (record_miss == NULL) {
            return NULL;
        }
        int r = record_miss == Py_None ? 0 : fg_record_miss(self, record_miss, key);
        Py_DECREF(record_miss);
        if (r < 0 || set_counter(&self->misses, self->stats, n) < 0) {
            return NULL;
        }
        return Py_NewRef(deflt);
    }
    Py_INCREF(entry); /* clock() and access() may run Python code that drops it from the map */
    PyObject *value = NULL, *expires = NULL, *result = NULL;
    value = slot_get(&self->value, entry);
    if (value == NULL) {
        goto done;
    }
    expires = slot_get(&self->expires, entry);
    if (expires == NULL) {
        goto done;
    }
    int slow = fg_needs_slow_path(self, value, expires);
    if (slow < 0) {
        goto done;
    }
    Py_ssize_t h = 0;
    if (!slow) {
        h = get_counter(&self->hits, self->stats);
        if (h == -1 && PyErr_Occurred()) {
            goto done;
        }
        h += 1;
        slow = (h & self->mask) == 0; /* a tick: the closure samples and drains */
    }
    if (slow) {
        result = PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        goto done;
    }
    if (self->access != NULL) {
        PyObject *r = PyObject_CallOneArg(self->access, k);
        if (r == NULL) {
            /* Evicted by another thread after our read: the read came first (as in Python). */
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                goto done;
            }
            PyErr_Clear();
        }
        else {
            Py_DECREF(r);
        }
    }
    if (set_counter(&self->hits, self->stats, h) < 0) {
        goto done;
    }
    result = Py_NewRef(value);
done:
    Py_DECREF(k);
    Py_DECREF(entry);
    Py_XDECREF(value);
    Py_XDECREF(expires);
    return result;
}

PyDoc_STRVAR(fused_get_type_doc,
"The hit path of MemoryStore.fused_get in C; built by fused_get(), called like Cache.get.");

static PyTypeObject FusedGetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups.FusedGet",
    .tp_doc = fused_get_type_doc,
    .tp_basicsize = sizeof(FusedGet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_dealloc = (destructor)fg_dealloc,
    .tp_traverse = (traverseproc)fg_traverse,
    .tp_clear = (inquiry)fg_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FusedGet, vectorcall),
};

PyDoc_STRVAR(fused_get_doc,
"fused_get(data, prefix, hooks, stats, store, clock, access, native_types, slow, mask,\n"
"          sliding, miss_is_final, entry) -> FusedGet\n\n"
"A callable get(key, default=None) that serves plain hits and misses of the map `data`\n"
"(a miss a policy counts under store._lock, as the closure does) and passes every other\n"
"call to `slow`; see the C source.\n"
"`entry` is an instance of the entry class, whose slots `value` and `expires` are read.");

static PyObject *
fused_get(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("fused_get", nargs, 13)) {
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "data must be a dict");
        return NULL;
    }
    if (!PyUnicode_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "prefix must be a str");
        return NULL;
    }
    if (!PyFrozenSet_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "native_types must be a frozenset");
        return NULL;
    }
    for (int i = 5; i <= 8; i++) {
        if (i != 7 && !(i == 6 && args[i] == Py_None) && !PyCallable_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "argument %d must be callable", i + 1);
            return NULL;
        }
    }
    Py_ssize_t mask = PyLong_AsSsize_t(args[9]);
    if (mask == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int sliding = PyObject_IsTrue(args[10]);
    int final = PyObject_IsTrue(args[11]);
    if (sliding < 0 || final < 0) {
        return NULL;
    }
    PyObject *lock = PyObject_GetAttr(args[4], str__lock);
    if (lock != NULL && lock_usable(lock) < 0) {
        Py_CLEAR(lock);
    }
    FusedGet *self = lock == NULL ? NULL : PyObject_GC_New(FusedGet, &FusedGetType);
    if (self == NULL) {
        Py_XDECREF(lock);
        return NULL;
    }
    self->lock = lock;
    self->data = Py_NewRef(args[0]);
    self->prefix = PyUnicode_GET_LENGTH(args[1]) ? Py_NewRef(args[1]) : NULL;
    self->hooks = Py_NewRef(args[2]);
    self->stats = Py_NewRef(args[3]);
    self->store = Py_NewRef(args[4]);
    self->clock = Py_NewRef(args[5]);
    self->access = args[6] == Py_None ? NULL : Py_NewRef(args[6]);
    self->native_types = Py_NewRef(args[7]);
    self->slow = Py_NewRef(args[8]);
    self->mask = mask;
    self->sliding = sliding;
    self->miss_is_final = final;
    slot_ref_init(&self->active, self->hooks, str_active);
    slot_ref_init(&self->hits, self->stats, str_hits);
    slot_ref_init(&self->misses, self->stats, str_misses);
    slot_ref_init(&self->value, args[12], str_value);
    slot_ref_init(&self->expires, args[12], str_expires);
    /* slot_ref borrows the entry's type: keep it alive with this object. */
    self->entry_type = Py_NewRef((PyObject *)Py_TYPE(args[12]));
    self->vectorcall = fg_vectorcall;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* ---------------------------------------------------------------------------------------
 * lfu_replay: LFUPolicy.on_access_many's loop (policies/lfu.py), on the policy's own nodes.
 *
 * A hit moves its key's node from the list of the bucket for count c to the end of the list of
 * the bucket for c + 1, which is the next bucket or a new one linked after it, and unlinks the
 * old bucket if that emptied it. Creating a bucket (~0.5% of hits in a steady state) is left to
 * Python's LFUPolicy._link_after, and the end of an aging epoch stops the loop so that Python
 * runs _age(); the rest is pointer writes on the _Node slots (bucket, next, prev) and _Bucket
 * slots (count, ring, next, prev), with one lookup in the `where` dict.
 */

static slot_ref b_count, b_ring, b_next, b_prev; /* _Bucket */
static slot_ref n_bucket, n_next, n_prev;        /* _Node */
static PyTypeObject *lfu_bucket_type;            /* the types they were made for; strong refs */
static PyTypeObject *lfu_node_type;

/* obj.<ref> as a borrowed reference (obj holds it), or NULL with an exception. */
static inline PyObject *
slot_borrow(const slot_ref *ref, PyObject *obj)
{
    PyObject *v = slot_get(ref, obj);
    if (v != NULL) {
        Py_DECREF(v); /* still referenced by obj's slot */
    }
    return v;
}

/* a.<next> = b and b.<prev> = a: 0, or -1 with an exception. */
static inline int
join(const slot_ref *next, const slot_ref *prev, PyObject *a, PyObject *b)
{
    return slot_set(next, a, b) < 0 || slot_set(prev, b, a) < 0 ? -1 : 0;
}

/* Unlink `item` from its circular list: item.prev.next = item.next and back. 1 if the list is
 * left with one element (the sentinel: the list emptied), 0 if not, -1 with an exception. */
static int
unlink_item(const slot_ref *next_ref, const slot_ref *prev_ref, PyObject *item)
{
    PyObject *prev = slot_get(prev_ref, item);
    PyObject *next = prev == NULL ? NULL : slot_get(next_ref, item);
    int rc = next == NULL ? -1 : join(next_ref, prev_ref, prev, next) < 0 ? -1 : prev == next;
    Py_XDECREF(prev);
    Py_XDECREF(next);
    return rc;
}

/* One on_access: 0 done, -1 error. Runs no Python code but _link_after and keys' __eq__. */
static int
lfu_access(PyObject *key, PyObject *where, PyObject *link_after)
{
    PyObject *node = PyDict_GetItemWithError(where, key);
    if (node == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return -1;
    }
    Py_INCREF(node);
    PyObject *bucket = NULL, *target = NULL, *ring = NULL, *last = NULL;
    int rc = -1;
    bucket = slot_get(&n_bucket, node);
    if (bucket == NULL) {
        goto done;
    }
    PyObject *count = slot_borrow(&b_count, bucket);
    if (count == NULL) {
        goto done;
    }
    Py_ssize_t c = PyLong_AsSsize_t(count);
    if (c == -1 && PyErr_Occurred()) {
        goto done;
    }
    PyObject *next = slot_borrow(&b_next, bucket);
    if (next == NULL) {
        goto done;
    }
    PyObject *next_count = slot_borrow(&b_count, next);
    if (next_count == NULL) {
        goto done;
    }
    Py_ssize_t nc = PyLong_AsSsize_t(next_count);
    if (nc == -1 && PyErr_Occurred()) {
        goto done;
    }
    if (nc == c + 1) {
        target = Py_NewRef(next);
    }
    else {
        PyObject *want = PyLong_FromSsize_t(c + 1);
        if (want == NULL) {
            goto done;
        }
        PyObject *call_args[2] = {bucket, want};
        target = PyObject_Vectorcall(link_after, call_args, 2, NULL);
        Py_DECREF(want);
        if (target == NULL) {
            goto done;
        }
    }
    /* Out of the old bucket's list (and the bucket out of the bucket list if it emptied)... */
    int emptied = unlink_item(&n_next, &n_prev, node);
    if (emptied < 0 || (emptied && unlink_item(&b_next, &b_prev, bucket) < 0)) {
        goto done;
    }
    /* ... and in at the end of the target's: last <-> node <-> ring; node.bucket = target. */
    ring = slot_get(&b_ring, target);
    last = ring == NULL ? NULL : slot_get(&n_prev, ring);
    if (last == NULL || join(&n_next, &n_prev, last, node) < 0 || join(&n_next, &n_prev, node, ring) < 0
        || slot_set(&n_bucket, node, target) < 0) {
        goto done;
    }
    rc = 0;
done:
    Py_DECREF(node);
    Py_XDECREF(bucket);
    Py_XDECREF(target);
    Py_XDECREF(ring);
    Py_XDECREF(last);
    return rc;
}

PyDoc_STRVAR(lfu_replay_doc,
"lfu_replay(keys, start, tracked, where, node_type, bucket_type, link_after, left)\n"
"    -> (index, done)\n\n"
"LFUPolicy.on_access for each key of keys[start:] that is in `tracked`, in order, until\n"
"`done` (the hits replayed) reaches `left` (the aging epoch is over: Python ages the counts)\n"
"or the keys run out; `index` is where to resume.");

static PyObject *
lfu_replay(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("lfu_replay", nargs, 8)) {
        return NULL;
    }
    PyObject *keys = args[0];
    PyObject *tracked = args[2];
    PyObject *where = args[3];
    PyObject *ntype = args[4];
    PyObject *btype = args[5];
    PyObject *link_after = args[6];
    if (!PyList_Check(keys)) {
        PyErr_Format(PyExc_TypeError, "keys must be a list, got %.100s", Py_TYPE(keys)->tp_name);
        return NULL;
    }
    if (!PyDict_Check(where) || !PyType_Check(ntype) || !PyType_Check(btype) || !PyCallable_Check(link_after)) {
        PyErr_SetString(PyExc_TypeError,
                        "where must be a dict, node_type and bucket_type types, link_after callable");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t left = PyLong_AsSsize_t(args[7]);
    if (left == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((PyTypeObject *)btype != lfu_bucket_type) {
        slot_ref_init_type(&b_count, (PyTypeObject *)btype, str_count);
        slot_ref_init_type(&b_ring, (PyTypeObject *)btype, str_ring);
        slot_ref_init_type(&b_next, (PyTypeObject *)btype, str_next);
        slot_ref_init_type(&b_prev, (PyTypeObject *)btype, str_prev);
        Py_INCREF(btype);
        Py_XSETREF(lfu_bucket_type, (PyTypeObject *)btype);
    }
    if ((PyTypeObject *)ntype != lfu_node_type) {
        slot_ref_init_type(&n_bucket, (PyTypeObject *)ntype, str_bucket);
        slot_ref_init_type(&n_next, (PyTypeObject *)ntype, str_next);
        slot_ref_init_type(&n_prev, (PyTypeObject *)ntype, str_prev);
        Py_INCREF(ntype);
        Py_XSETREF(lfu_node_type, (PyTypeObject *)ntype);
    }
    Py_ssize_t done = 0;
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = Py_NewRef(PyList_GET_ITEM(keys, i));
        int r = contains(tracked, key);
        if (r > 0) {
            r = lfu_access(key, where, link_after);
            if (r == 0) {
                r = 1;
            }
        }
        Py_DECREF(key);
        if (r < 0) {
            return NULL;
        }
        if (r > 0 && ++done >= left) {
            i++;
            break;
        }
    }
    return Py_BuildValue("(nn)", i, done);
}

/* ---------------------------------------------------------------------------------------
 * FusedSet: the inline path of MemoryStore.fused_set in C, for stores whose map is the order.
 *
 * It serves a set(key, value) or set(key, value, None) with a str key on a store that weighs
 * nothing, slides nothing and keeps its order in the map itself (lru, fifo, or unbounded):
 * the write, the overwrite's recency update and the eviction of the map's first keys, under the
 * store's lock, exactly as the Python closure does. Every other call (hooks, a closed cache, a
 * ttl, a policy with its own bookkeeping, a latency "tick") goes to the closure (`slow`).
 */

/* Instance attributes read and written in the object's __dict__, not through the generic
 * PyObject_GetAttr (~190 instructions; a dict probe is a third of that). Used only when the
 * object's type defines no data descriptor (property, slot) for any of the names, checked
 * once by inst_dict(); otherwise `dict` is NULL and the generic calls are used. */
static PyObject *
inst_dict(PyObject *obj, PyObject *const *names, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyObject_GetAttr((PyObject *)Py_TYPE(obj), names[i]);
        if (d == NULL) {
            PyErr_Clear();
            continue;
        }
        int data_descriptor = Py_TYPE(d)->tp_descr_set != NULL;
        Py_DECREF(d);
        if (data_descriptor) {
            return NULL;
        }
    }
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL || !PyDict_CheckExact(dict)) {
        PyErr_Clear();
        Py_XDECREF(dict);
        return NULL;
    }
    return dict;
}

/* obj.<name> (new reference), from `dict` when it holds it, else the generic lookup. */
static inline PyObject *
inst_get(PyObject *dict, PyObject *obj, PyObject *name)
{
    if (dict != NULL) {
        PyObject *v = PyDict_GetItemWithError(dict, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetAttr(obj, name);
}

static inline int
inst_set(PyObject *dict, PyObject *obj, PyObject *name, PyObject *value)
{
    return dict != NULL ? PyDict_SetItem(dict, name, value) : PyObject_SetAttr(obj, name, value);
}

typedef struct {
    PyObject_HEAD
    PyObject *data;       /* the store's OrderedDict */
    PyObject *prefix;     /* NULL when empty */
    PyObject *hooks;
    PyObject *owner;      /* the facade: _closed, default_ttl */
    PyObject *stats;      /* .sets, .set_latency */
    PyObject *store;      /* _c_writes, _reads, _heap, _policy, max_entries, evictions */
    PyObject *lock;       /* the store's lock: see lock_take */
    PyObject *clock;
    PyObject *unset;      /* the UNSET sentinel */
    PyObject *slow;
    PyObject *entry_type;
    PyObject *popitem;    /* data.popitem and data.move_to_end, bound once; NULL for a plain dict */
    PyObject *move_to_end;
    PyObject *no_key;     /* policies/tinylfu.py's _NO_KEY ("no last miss"), for tl_insert */
    PyObject *store_dict; /* the store's __dict__ (for `evictions`), or NULL (see inst_dict) */
    Py_ssize_t mask;
    slot_ref active, sets, e_value, e_expires, e_weight, e_version, e_created, e_updated;
    /* The store's and the facade's attributes read on every write: __slots__ of theirs
     * (MemoryStore, Cache), read at their offsets; slot_get falls back to getattr. */
    slot_ref s_c_writes, s_reads, s_heap, s_policy, s_max_entries, o_closed, o_default_ttl;
    vectorcallfunc vectorcall;
} FusedSet;

static PyObject *str_c_writes, *str_set_latency, *str_add;
static PyObject *perf_counter; /* time.perf_counter, for the fused set's latency samples */
/* store._c_writes (memory_store.py's C_WRITES_*): the map is the order, or a TinyLFUPolicy. */
#define C_WRITES_MAP_ORDERED 1
#define C_WRITES_TINYLFU 2
static int call_method0(PyObject *obj, PyObject *name);
static int tl_insert(PyObject *policy, PyObject *key, PyObject *no_key);
static int tl_update(PyObject *policy, PyObject *key);
static PyObject *tl_evict(PyObject *policy);
static PyObject *str_closed, *str_default_ttl, *str_heap, *str_policy, *str_max_entries, *str_evictions, *str_purge_locked,
    *str__expire, *str_enforce, *str_popitem, *str_move_to_end, *str_sets, *str_weight, *str_version, *str_created,
    *str_updated, *kwnames_over, *long_zero, *long_one, *long_eight;

static int
fs_traverse(FusedSet *self, visitproc visit, void *arg)
{
    Py_VISIT(self->data);
    Py_VISIT(self->prefix);
    Py_VISIT(self->hooks);
    Py_VISIT(self->owner);
    Py_VISIT(self->stats);
    Py_VISIT(self->store);
    Py_VISIT(self->lock);
    Py_VISIT(self->clock);
    Py_VISIT(self->unset);
    Py_VISIT(self->slow);
    Py_VISIT(self->entry_type);
    Py_VISIT(self->store_dict);
    Py_VISIT(self->popitem);
    Py_VISIT(self->move_to_end);
    Py_VISIT(self->no_key);
    return 0;
}

static int
fs_clear(FusedSet *self)
{
    Py_CLEAR(self->data);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->hooks);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->store);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->unset);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->entry_type);
    Py_CLEAR(self->store_dict);
    Py_CLEAR(self->popitem);
    Py_CLEAR(self->move_to_end);
    Py_CLEAR(self->no_key);
    return 0;
}

static void
fs_dealloc(FusedSet *self)
{
    PyObject_GC_UnTrack(self);
    fs_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The truth of obj.<name>: 1, 0, or -1 with an exception set. */
static int
attr_true(PyObject *dict, PyObject *obj, PyObject *name)
{
    PyObject *v = inst_get(dict, obj, name);
    if (v == NULL) {
        return -1;
    }
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* The store's write under its lock (held by the caller). 1 done, 0 "not for this path"
 * (nothing was changed), -1 error. */
static int
fs_write_locked(FusedSet *self, PyObject *k, PyObject *value)
{
    /* Checked under the lock: a concurrent resize may have changed the write path. */
    PyObject *path_obj = slot_get(&self->s_c_writes, self->store);
    long path = path_obj == NULL ? -1 : PyLong_AsLong(path_obj);
    Py_XDECREF(path_obj);
    if (path == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (path != C_WRITES_MAP_ORDERED && path != C_WRITES_TINYLFU) {
        return 0;
    }
    int tinylfu = path == C_WRITES_TINYLFU;
    int rc = -1;
    PyObject *now = NULL, *heap = NULL, *entry = NULL, *tmp = NULL, *policy = NULL;
    if (tinylfu) {
        /* The policy hears of every buffered hit before this write, as in the closure. */
        int pending = slot_true(&self->s_reads, self->store);
        if (pending < 0 || (pending && call_method0(self->store, str__drain_reads) < 0)) {
            goto done;
        }
        policy = slot_get(&self->s_policy, self->store);
        if (policy == NULL) {
            goto done;
        }
    }
    now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        goto done;
    }
    heap = slot_get(&self->s_heap, self->store);
    if (heap == NULL || !PyList_Check(heap)) {
        if (heap != NULL) {
            PyErr_SetString(PyExc_TypeError, "store._heap must be a list");
        }
        goto done;
    }
    if (PyList_GET_SIZE(heap) > 0) {
        /* heap[0][0] <= now: reclaim a few expired entries, as _put does. */
        PyObject *first = PyList_GET_ITEM(heap, 0);
        if (!PyTuple_Check(first) || PyTuple_GET_SIZE(first) < 1) {
            PyErr_SetString(PyExc_TypeError, "store._heap items must be (deadline, key) tuples");
            goto done;
        }
        int due = PyObject_RichCompareBool(PyTuple_GET_ITEM(first, 0), now, Py_LE);
        if (due < 0) {
            goto done;
        }
        if (due) {
            tmp = PyObject_CallMethodObjArgs(self->store, str_purge_locked, now, long_eight, NULL);
            if (tmp == NULL) {
                goto done;
            }
            Py_CLEAR(tmp);
        }
    }
    entry = PyDict_GetItemWithError(self->data, k);
    if (entry == NULL && PyErr_Occurred()) {
        goto done;
    }
    Py_XINCREF(entry);
    if (entry != NULL) {
        /* A dead entry is not overwritten: store._expire(k, entry) drops and counts it, and
         * a new entry is made below (as _put does). */
        tmp = slot_get(&self->e_expires, entry);
        if (tmp == NULL) {
            goto done;
        }
        int dead = tmp != Py_None ? PyObject_RichCompareBool(tmp, now, Py_LE) : 0;
        Py_CLEAR(tmp);
        if (dead < 0) {
            goto done;
        }
        if (dead) {
            tmp = PyObject_CallMethodObjArgs(self->store, str__expire, k, entry, NULL);
            if (tmp == NULL) {
                goto done;
            }
            Py_CLEAR(tmp);
            Py_CLEAR(entry);
        }
    }
    if (entry != NULL) {
        /* An overwrite: value, expires, version + 1, updated; the key moves to the end. */
        PyObject *version = slot_get(&self->e_version, entry);
        if (version == NULL) {
            goto done;
        }
        tmp = PyNumber_Add(version, long_one);
        Py_DECREF(version);
        if (tmp == NULL || slot_set(&self->e_value, entry, value) < 0
            || slot_set(&self->e_expires, entry, Py_None) < 0 || slot_set(&self->e_version, entry, tmp) < 0
            || slot_set(&self->e_updated, entry, now) < 0) {
            goto done;
        }
        Py_CLEAR(tmp);
        if (tinylfu) {
            if (tl_update(policy, k) < 0) { /* policy.on_update(k, 1) */
                goto done;
            }
        }
        else if (self->move_to_end != NULL) {
            tmp = PyObject_CallOneArg(self->move_to_end, k);
            if (tmp == NULL) {
                goto done;
            }
            Py_CLEAR(tmp);
        }
        rc = 1;
        goto done;
    }
    /* A new entry, its slots set here (no __init__, as in Python: object.__new__). */
    entry = ((PyTypeObject *)self->entry_type)->tp_alloc((PyTypeObject *)self->entry_type, 0);
    if (entry == NULL) {
        goto done;
    }
    if (slot_set(&self->e_value, entry, value) < 0 || slot_set(&self->e_expires, entry, Py_None) < 0
        || slot_set(&self->e_weight, entry, long_zero) < 0
        || slot_set(&self->e_version, entry, long_one) < 0
        || slot_set(&self->e_created, entry, now) < 0 || slot_set(&self->e_updated, entry, now) < 0
        || PyObject_SetItem(self->data, k, entry) < 0) {
        goto done;
    }
    if (tinylfu && tl_insert(policy, k, self->no_key) < 0) {
        goto done;
    }
    PyObject *max_entries = slot_get(&self->s_max_entries, self->store);
    if (max_entries == NULL) {
        goto done;
    }
    Py_ssize_t limit = max_entries == Py_None ? -1 : PyLong_AsSsize_t(max_entries);
    Py_DECREF(max_entries);
    if (limit == -1 && PyErr_Occurred()) {
        goto done;
    }
    Py_ssize_t size = PyObject_Length(self->data);
    if (size < 0) {
        goto done;
    }
    if (limit >= 0 && size > limit) {
        int has_policy = tinylfu; /* a tinylfu store's policy was read above */
        if (!tinylfu) {
            PyObject *p = slot_get(&self->s_policy, self->store);
            if (p == NULL) {
                goto done;
            }
            has_policy = p != Py_None;
            Py_DECREF(p);
        }
        if (has_policy) {
            if (PyList_GET_SIZE(heap) > 0) {
                /* Expired entries go before live ones: _enforce(over=True) decides. */
                PyObject *call_args[2] = {self->store, Py_True};
                PyObject *method = PyObject_GetAttr(self->store, str_enforce);
                if (method == NULL) {
                    goto done;
                }
                tmp = PyObject_Vectorcall(method, call_args + 1, 0, kwnames_over);
                Py_DECREF(method);
                if (tmp == NULL) {
                    goto done;
                }
                Py_CLEAR(tmp);
            }
            else {
                /* The policy's victims (tinylfu), or the map's first keys (its order). */
                Py_ssize_t evicted = 0;
                while (tinylfu && size > limit) {
                    tmp = tl_evict(policy);
                    if (tmp == NULL) {
                        goto done;
                    }
                    /* data.pop(victim, None): count it if the store held it. */
                    int held = PyObject_DelItem(self->data, tmp) == 0;
                    if (!held) {
                        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                            goto done;
                        }
                        PyErr_Clear();
                    }
                    Py_CLEAR(tmp);
                    evicted += held;
                    size -= held;
                }
                while (size > limit) {
                    if (self->popitem == NULL) {
                        PyErr_SetString(PyExc_TypeError, "a bounded store's map must be an OrderedDict");
                        goto done;
                    }
                    tmp = PyObject_CallOneArg(self->popitem, Py_False); /* popitem(last=False) */
                    if (tmp == NULL) {
                        goto done;
                    }
                    Py_CLEAR(tmp);
                    evicted++;
                    size--;
                }
                PyObject *count = inst_get(self->store_dict, self->store, str_evictions);
                if (count == NULL) {
                    goto done;
                }
                PyObject *n = PyLong_FromSsize_t(evicted);
                tmp = n == NULL ? NULL : PyNumber_Add(count, n);
                Py_DECREF(count);
                Py_XDECREF(n);
                if (tmp == NULL || inst_set(self->store_dict, self->store, str_evictions, tmp) < 0) {
                    goto done;
                }
                Py_CLEAR(tmp);
            }
        }
    }
    rc = 1;
done:
    Py_XDECREF(now);
    Py_XDECREF(heap);
    Py_XDECREF(entry);
    Py_XDECREF(tmp);
    Py_XDECREF(policy);
    return rc;
}

static PyObject *
fs_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FusedSet *self = (FusedSet *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    /* Non-ASCII keys go to the facade, which refuses lone surrogates. */
    if (kwnames != NULL || nargs < 2 || nargs > 3 || !PyUnicode_CheckExact(args[0])
        || !PyUnicode_IS_ASCII(args[0])) {
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    int hook = slot_true(&self->active, self->hooks);
    if (hook != 0) {
        return hook < 0 ? NULL : PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    int closed = slot_true(&self->o_closed, self->owner);
    if (closed != 0) {
        return closed < 0 ? NULL : PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    PyObject *ttl = nargs == 3 ? args[2] : self->unset;
    if (ttl == self->unset) {
        PyObject *seconds = slot_get(&self->o_default_ttl, self->owner);
        if (seconds == NULL) {
            return NULL;
        }
        int forever = seconds == Py_None;
        Py_DECREF(seconds);
        if (!forever) {
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        }
    }
    else if (ttl != Py_None) {
        return PyObject_Vectorcall(self->slow, args, nargsf, NULL); /* validated there */
    }
    Py_ssize_t n = get_counter(&self->sets, self->stats);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    n += 1;
    PyObject *started = NULL; /* a tick: the write is timed, as the closure times its own */
    if ((n & self->mask) == 0) {
        if (self->mask == 0) {
            /* Every call is a tick (sample_every is 1 or not a power of two): the closure
             * tests `n % every` itself. */
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        }
        started = PyObject_CallNoArgs(perf_counter);
        if (started == NULL) {
            return NULL;
        }
    }
    PyObject *k = prefixed(self->prefix, args[0]);
    if (k == NULL) {
        Py_XDECREF(started);
        return NULL;
    }
    if (lock_take(self->lock) < 0) {
        Py_DECREF(k);
        Py_XDECREF(started);
        return NULL;
    }
    int done = fs_write_locked(self, k, args[1]);
    Py_DECREF(k);
    if (lock_give(self->lock) < 0 || done <= 0) {
        Py_XDECREF(started);
        if (PyErr_Occurred()) {
            return NULL;
        }
        /* Not for this path: the closure writes (and times the facade's path on a tick). */
        return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    if (set_counter(&self->sets, self->stats, n) < 0) {
        Py_XDECREF(started);
        return NULL;
    }
    if (started != NULL) {
        /* stats.set_latency.add(perf_counter() - started) */
        PyObject *now = PyObject_CallNoArgs(perf_counter);
        PyObject *elapsed = now == NULL ? NULL : PyNumber_Subtract(now, started);
        PyObject *latency = elapsed == NULL ? NULL : PyObject_GetAttr(self->stats, str_set_latency);
        PyObject *r = latency == NULL ? NULL : PyObject_CallMethodOneArg(latency, str_add, elapsed);
        Py_XDECREF(now);
        Py_XDECREF(elapsed);
        Py_XDECREF(latency);
        Py_DECREF(started);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(fused_set_type_doc,
"The inline path of MemoryStore.fused_set in C; built by fused_set(), called like Cache.set.");

static PyTypeObject FusedSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups.FusedSet",
    .tp_doc = fused_set_type_doc,
    .tp_basicsize = sizeof(FusedSet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_dealloc = (destructor)fs_dealloc,
    .tp_traverse = (traverseproc)fs_traverse,
    .tp_clear = (inquiry)fs_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FusedSet, vectorcall),
};

PyDoc_STRVAR(fused_set_doc,
"fused_set(data, prefix, hooks, owner, stats, store, lock, clock, unset, slow, mask, entry,\n"
"          no_key) -> FusedSet\n\n"
"A callable set(key, value, ttl=UNSET) that writes plain values into a store whose map is its\n"
"order, or whose policy is exactly TinyLFUPolicy, and passes every other call to `slow`;\n"
"`entry` is an instance of the entry class, `no_key` TinyLFU's 'no last miss' marker.");

static PyObject *
fused_set(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("fused_set", nargs, 13)) {
        return NULL;
    }
    if (!PyDict_Check(args[0]) || !PyUnicode_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "data must be a dict and prefix a str");
        return NULL;
    }
    if (!PyCallable_Check(args[7]) || !PyCallable_Check(args[9])) {
        PyErr_SetString(PyExc_TypeError, "clock and slow must be callable");
        return NULL;
    }
    Py_ssize_t mask = PyLong_AsSsize_t(args[10]);
    if (mask == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (lock_usable(args[6]) < 0) {
        return NULL;
    }
    FusedSet *self = PyObject_GC_New(FusedSet, &FusedSetType);
    if (self == NULL) {
        return NULL;
    }
    self->data = Py_NewRef(args[0]);
    self->prefix = PyUnicode_GET_LENGTH(args[1]) ? Py_NewRef(args[1]) : NULL;
    self->hooks = Py_NewRef(args[2]);
    self->owner = Py_NewRef(args[3]);
    self->stats = Py_NewRef(args[4]);
    self->store = Py_NewRef(args[5]);
    self->lock = Py_NewRef(args[6]);
    self->clock = Py_NewRef(args[7]);
    self->unset = Py_NewRef(args[8]);
    self->slow = Py_NewRef(args[9]);
    self->entry_type = Py_NewRef((PyObject *)Py_TYPE(args[11]));
    self->no_key = Py_NewRef(args[12]);
    self->mask = mask;
    self->popitem = self->move_to_end = NULL;
    if (PyODict_Check(self->data)) {
        self->popitem = PyObject_GetAttr(self->data, str_popitem);
        self->move_to_end = PyObject_GetAttr(self->data, str_move_to_end);
        if (self->popitem == NULL || self->move_to_end == NULL) {
            self->store_dict = NULL;
            Py_DECREF(self); /* not tracked yet: dealloc untracks harmlessly */
            return NULL;
        }
    }
    PyObject *store_names[] = {str_evictions};
    self->store_dict = inst_dict(self->store, store_names, 1);
    slot_ref_init(&self->s_c_writes, self->store, str_c_writes);
    slot_ref_init(&self->s_reads, self->store, str__reads);
    slot_ref_init(&self->s_heap, self->store, str_heap);
    slot_ref_init(&self->s_policy, self->store, str_policy);
    slot_ref_init(&self->s_max_entries, self->store, str_max_entries);
    slot_ref_init(&self->o_closed, self->owner, str_closed);
    slot_ref_init(&self->o_default_ttl, self->owner, str_default_ttl);
    slot_ref_init(&self->active, self->hooks, str_active);
    slot_ref_init(&self->sets, self->stats, str_sets);
    PyTypeObject *etype = Py_TYPE(args[11]);
    slot_ref_init_type(&self->e_value, etype, str_value);
    slot_ref_init_type(&self->e_expires, etype, str_expires);
    slot_ref_init_type(&self->e_weight, etype, str_weight);
    slot_ref_init_type(&self->e_version, etype, str_version);
    slot_ref_init_type(&self->e_created, etype, str_created);
    slot_ref_init_type(&self->e_updated, etype, str_updated);
    self->vectorcall = fs_vectorcall;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* ---------------------------------------------------------------------------------------
 * TinyLFU's miss, insert and evict (policies/tinylfu.py) on the policy's own state.
 *
 * TinyLFUPolicy keeps its state in __slots__ (ints, OrderedDicts, a list) and a
 * FrequencySketch (slots too), read and written here at their offsets (tl_bind, slot_borrow). These functions do record_miss(), on_insert() with weight 1 and
 * evict() there, step for step as the Python methods do, and call back into Python for what
 * is rare or random: a sketch halving (reset), a hill-climber step (_climb), a sketch growth
 * (_grow_sketch), the admission coin (_admit), the eviction without a candidate (_evict_main).
 * The Python methods use them only for an instance of exactly TinyLFUPolicy (a subclass may
 * override anything), and tests/test_speedups.py holds the two to identical state.
 */

#define GHOST_SHARE 0.0625
#define MIN_GHOST 8
#define ADMIT_HASHDOS_THRESHOLD 6
#define ADMIT_COLD_MAX 2 /* a candidate this cold must lead by two (tinylfu.py's _ADMIT_COLD_MAX) */

static PyObject *str__sketch, *str__last_miss, *str__window_ghost, *str__main_ghost,
    *str__climb, *str__window, *str__grow_sketch, *str__candidates, *str__probation, *str__admit,
    *str__evict_main, *str_reset, *str__table, *str__salt, *str__mask, *str__protected;

static slot_ref sk_table, sk_salt, sk_mask;
static PyTypeObject *sketch_type; /* the type sk_* were made for; a strong reference */

/* The integer state of TinyLFUPolicy and of FrequencySketch, as C fields of a base class
 * (TinyLFUCounters, SketchCounters): Python reads and writes them as attributes, unchanged,
 * and the C helpers add to them in place. As Python ints in slots, each `+= 1` from C was a
 * read, an unboxing, a new int and a write (~190 instructions; an evicting write made ~15). */
typedef struct {
    PyObject_HEAD
    Py_ssize_t weight, capacity, entries, window_weight, protected_weight, hits, misses;
    Py_ssize_t window_ghost_hits, main_ghost_hits, window_max, protected_max, climb_period, grow_at;
} TLCounters;

#define TL_MEMBER(name, field, doc) {name, Py_T_PYSSIZET, offsetof(TLCounters, field), 0, doc}
static PyMemberDef tl_counter_members[] = {
    TL_MEMBER("weight", weight, "Total weight of the tracked keys."),
    TL_MEMBER("capacity", capacity, "The current capacity (maximum total weight)."),
    TL_MEMBER("_entries", entries, "The number of tracked keys."),
    TL_MEMBER("_window_weight", window_weight, "The window's weight."),
    TL_MEMBER("_protected_weight", protected_weight, "The protected segment's weight."),
    TL_MEMBER("_hits", hits, "Hits in the climber's current sample period."),
    TL_MEMBER("_misses", misses, "Misses in the climber's current sample period."),
    TL_MEMBER("_window_ghost_hits", window_ghost_hits, "Weight of misses on window ghosts this period."),
    TL_MEMBER("_main_ghost_hits", main_ghost_hits, "Weight of misses on main ghosts this period."),
    TL_MEMBER("_window_max", window_max, "The window's maximum weight."),
    TL_MEMBER("_protected_max", protected_max, "The protected segment's maximum weight."),
    TL_MEMBER("_climb_period", climb_period, "Requests per climber sample period."),
    TL_MEMBER("_grow_at", grow_at, "The entry count at which the sketch grows."),
    {NULL, 0, 0, 0, NULL},
};

/* A base class that holds C integer fields as attributes, for a Python class to derive from. */
#define COUNTERS_TYPE(name, owner, ctype, members)                                                 \
    {                                                                                              \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "stratacache.core._speedups." name,               \
        .tp_doc = "The integer attributes of " owner ", as C fields (its base class with the speedups).", \
        .tp_basicsize = sizeof(ctype), .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,        \
        .tp_new = PyType_GenericNew, .tp_members = members,                                        \
    }

static PyTypeObject TLCountersType = COUNTERS_TYPE("TinyLFUCounters", "TinyLFUPolicy", TLCounters, tl_counter_members);

typedef struct {
    PyObject_HEAD
    Py_ssize_t size, sample_size;
} SketchCounters;

static PyMemberDef sketch_counter_members[] = {
    {"size", Py_T_PYSSIZET, offsetof(SketchCounters, size), 0, "Increments since the last halving."},
    {"sample_size", Py_T_PYSSIZET, offsetof(SketchCounters, sample_size), 0, "Increments per halving."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SketchCountersType =
    COUNTERS_TYPE("SketchCounters", "FrequencySketch", SketchCounters, sketch_counter_members);

/* The counters of a policy that tl_bind accepted. */
#define TLC(policy) ((TLCounters *)(policy))

/* TinyLFUPolicy's attributes, read and written at their __slots__ offsets (slot_ref); bound
 * to the policy's type by tl_bind, the first step of each entry point. */
static slot_ref r__candidates, r__last_miss, r__main_ghost, r__probation, r__protected, r__sketch, r__window, r__window_ghost;
static PyTypeObject *tl_type; /* the type the r_* refs were made for; a strong reference */

static const struct {
    slot_ref *ref;
    PyObject **name;
} tl_slots[] = {
    {&r__sketch, &str__sketch},
    {&r__last_miss, &str__last_miss},
    {&r__window_ghost, &str__window_ghost},
    {&r__main_ghost, &str__main_ghost},
    {&r__window, &str__window},
    {&r__candidates, &str__candidates},
    {&r__probation, &str__probation},
    {&r__protected, &str__protected},
};

/* Bind the r_* refs to the policy's type (once per type). */
static int
tl_bind(PyObject *policy)
{
    if (!PyObject_TypeCheck(policy, &TLCountersType)) {
        PyErr_Format(PyExc_TypeError, "a tinylfu policy must be a TinyLFUCounters, got %.100s", Py_TYPE(policy)->tp_name);
        return -1;
    }
    if (Py_TYPE(policy) != tl_type) {
        for (size_t i = 0; i < sizeof(tl_slots) / sizeof(tl_slots[0]); i++) {
            slot_ref_init_type(tl_slots[i].ref, Py_TYPE(policy), *tl_slots[i].name);
        }
        Py_INCREF(Py_TYPE(policy));
        Py_XSETREF(tl_type, Py_TYPE(policy));
    }
    return 0;
}

static int
call_method0(PyObject *obj, PyObject *name)
{
    PyObject *r = PyObject_CallMethodNoArgs(obj, name);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* A view of a FrequencySketch object's table; -1 on error. */
static int
sketch_view_of(PyObject *sketch, sketch_view *view)
{
    if (Py_TYPE(sketch) != sketch_type) {
        slot_ref_init_type(&sk_table, Py_TYPE(sketch), str__table);
        slot_ref_init_type(&sk_salt, Py_TYPE(sketch), str__salt);
        slot_ref_init_type(&sk_mask, Py_TYPE(sketch), str__mask);
        Py_INCREF(Py_TYPE(sketch));
        Py_XSETREF(sketch_type, Py_TYPE(sketch));
    }
    PyObject *table = slot_get(&sk_table, sketch);
    PyObject *salt = table == NULL ? NULL : slot_get(&sk_salt, sketch);
    PyObject *mask = salt == NULL ? NULL : slot_get(&sk_mask, sketch);
    int r = mask == NULL ? -1 : sketch_view_init(view, table, salt, mask);
    Py_XDECREF(salt);
    Py_XDECREF(mask);
    if (r < 0) {
        Py_XDECREF(table);
        return -1;
    }
    /* The view keeps the table alive: a key's __hash__ or __eq__ is Python code that could,
     * in principle, make the sketch replace its table while the view is in use. */
    view->owner = table;
    return 0;
}

/* FrequencySketch.increment(key) */
static int
sketch_increment_object(PyObject *sketch, PyObject *key)
{
    if (!PyObject_TypeCheck(sketch, &SketchCountersType)) {
        PyErr_Format(PyExc_TypeError, "a sketch must be a SketchCounters, got %.100s", Py_TYPE(sketch)->tp_name);
        return -1;
    }
    sketch_view view;
    if (sketch_view_of(sketch, &view) < 0) {
        return -1;
    }
    int added = sketch_add(&view, key);
    Py_DECREF(view.owner);
    if (added <= 0) {
        return added;
    }
    SketchCounters *counts = (SketchCounters *)sketch;
    counts->size += 1;
    return counts->size >= counts->sample_size ? call_method0(sketch, str_reset) : 0;
}

/* TinyLFUPolicy._ghost_check(key) */
static int
ghost_check(PyObject *policy, PyObject *key)
{
    const slot_ref *ghosts[2] = {&r__window_ghost, &r__main_ghost};
    Py_ssize_t *hits[2] = {&TLC(policy)->window_ghost_hits, &TLC(policy)->main_ghost_hits};
    for (int i = 0; i < 2; i++) {
        PyObject *ghost = Py_XNewRef(slot_borrow(ghosts[i], policy)), *w = NULL;
        int found = ghost == NULL ? -1 : map_pop(ghost, key, &w);
        Py_XDECREF(ghost);
        if (found <= 0) {
            if (found < 0) {
                return -1;
            }
            continue;
        }
        Py_ssize_t weight = PyLong_AsSsize_t(w);
        Py_DECREF(w);
        if (weight == -1 && PyErr_Occurred()) {
            return -1;
        }
        *hits[i] += weight;
        return 0;
    }
    return 0;
}

/* The request counting shared by record_miss and on_insert (a set without a get): count `key`
 * in the sketch, settle a ghost hit, add a miss, and run the climber when its period is over. */
static int
count_request(PyObject *policy, PyObject *key)
{
    PyObject *sketch = Py_XNewRef(slot_borrow(&r__sketch, policy));
    if (sketch == NULL) {
        return -1;
    }
    int r = sketch_increment_object(sketch, key);
    Py_DECREF(sketch);
    if (r < 0 || ghost_check(policy, key) < 0) {
        return -1;
    }
    TLCounters *c = TLC(policy);
    c->misses += 1;
    return c->hits + c->misses >= c->climb_period ? call_method0(policy, str__climb) : 0;
}

PyDoc_STRVAR(tinylfu_record_miss_doc,
"tinylfu_record_miss(policy, key) -> None\n\nTinyLFUPolicy.record_miss, on the policy's state.");

static PyObject *
tinylfu_record_miss(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("tinylfu_record_miss", nargs, 2)) {
        return NULL;
    }
    PyObject *policy = args[0], *key = args[1];
    if (tl_bind(policy) < 0) {
        return NULL;
    }
    /* record_miss sets _last_miss between the counting steps; nothing in them reads it. */
    int r = count_request(policy, key);
    if (r == 0) {
        r = slot_set(&r__last_miss, policy, key);
    }
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Move `key` from `src` to the recent end of `dst` and read its weight (the value): 0 with
 * *weight set, or -1 with an exception (a KeyError when `src` does not hold the key). */
static int
move_weighed(PyObject *src, PyObject *dst, PyObject *key, Py_ssize_t *weight)
{
    PyObject *w = NULL;
    int moved = map_move(src, dst, key, &w);
    if (moved <= 0) {
        if (moved == 0) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return -1;
    }
    *weight = PyLong_AsSsize_t(w);
    Py_DECREF(w);
    return (*weight == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Move `src`'s least recent keys to the recent end of `dst` while the weight counted at
 * `*total` exceeds `*limit`: TinyLFUPolicy._spill_window (window -> probation, each key
 * appended to `candidates`) and _demote (protected -> probation, `candidates` NULL). */
static int
move_overflow(PyObject *src, PyObject *dst, Py_ssize_t *total, const Py_ssize_t *limit, PyObject *candidates)
{
    while (*total > *limit) {
        PyObject *k = NULL, *w = NULL;
        int moved = map_move_oldest(src, dst, &k, &w);
        if (moved <= 0) {
            if (moved < 0) {
                return -1;
            }
            break;
        }
        Py_ssize_t weight = PyLong_AsSsize_t(w);
        int r = ((weight == -1 && PyErr_Occurred()) || (candidates != NULL && PyList_Append(candidates, k) < 0))
                    ? -1
                    : 0;
        Py_DECREF(k);
        Py_DECREF(w);
        if (r < 0) {
            return -1;
        }
        *total -= weight;
    }
    return 0;
}

PyDoc_STRVAR(tinylfu_insert_doc,
"tinylfu_insert(policy, key, no_key) -> None\n\n"
"TinyLFUPolicy.on_insert(key, 1), on the policy's state; `no_key` is its 'no last miss' marker.");

static int
tl_insert(PyObject *policy, PyObject *key, PyObject *no_key)
{
    if (tl_bind(policy) < 0) {
        return -1;
    }
    TLCounters *c = TLC(policy);
    PyObject *last = NULL, *window = NULL, *candidates = NULL, *probation = NULL;
    int result = -1;
    last = slot_borrow(&r__last_miss, policy);
    if (last == NULL) {
        goto done;
    }
    Py_INCREF(last);
    if (slot_set(&r__last_miss, policy, no_key) < 0) {
        goto done;
    }
    /* A set without a get first: count the request here (`last is not key and last != key`). */
    int fresh = last != key;
    /* No last miss and a str key (the store's): nothing to compare, str never equals it. */
    if (fresh && !(last == no_key && PyUnicode_CheckExact(key))) {
        int equal = PyObject_RichCompareBool(last, key, Py_EQ);
        if (equal < 0) {
            goto done;
        }
        fresh = !equal;
    }
    if (fresh && count_request(policy, key) < 0) {
        goto done;
    }
    window = slot_borrow(&r__window, policy);
    if (window == NULL) {
        goto done;
    }
    Py_INCREF(window);
    if (map_set(window, key, long_one) < 0) {
        goto done;
    }
    if (1 > c->window_max && map_move_to_end(window, key, 0) < 0) {
        /* Heavier than the window: it goes to the least recent end (Caffeine). */
        goto done;
    }
    c->window_weight += 1;
    c->weight += 1;
    c->entries += 1;
    if (c->entries >= c->grow_at && call_method0(policy, str__grow_sketch) < 0) {
        goto done;
    }
    candidates = slot_borrow(&r__candidates, policy);
    if (candidates == NULL) {
        goto done;
    }
    Py_INCREF(candidates);
    if (!PyList_Check(candidates)) {
        PyErr_SetString(PyExc_TypeError, "tinylfu _candidates must be a list");
        goto done;
    }
    if (PyList_SetSlice(candidates, 0, PyList_GET_SIZE(candidates), NULL) < 0) {
        goto done;
    }
    /* _spill_window: the window's overflow, least recent first, becomes the candidates. */
    probation = Py_XNewRef(slot_borrow(&r__probation, policy));
    if (probation == NULL || move_overflow(window, probation, &c->window_weight, &c->window_max, candidates) < 0) {
        goto done;
    }
    result = 0;
done:
    Py_XDECREF(last);
    Py_XDECREF(window);
    Py_XDECREF(candidates);
    Py_XDECREF(probation);
    return result;
}

PyDoc_STRVAR(tinylfu_update_doc,
"tinylfu_update(policy, key) -> None\n\nTinyLFUPolicy.on_update(key, 1), on the policy's state.");

/* TinyLFUPolicy.on_update(key, 1): the new weight, then on_access (count, refresh or promote,
 * climb), then the overflow of protected and of the window, as in Python. */
static int
tl_update(PyObject *policy, PyObject *key)
{
    if (tl_bind(policy) < 0) {
        return -1;
    }
    TLCounters *c = TLC(policy);
    enum { PROTECTED, WINDOW, PROBATION };
    PyObject *regions[3] = {NULL, NULL, NULL}, *sketch = NULL, *candidates = NULL, *old = NULL;
    Py_ssize_t *weights[3] = {&c->protected_weight, &c->window_weight, NULL};
    int result = -1, region;
    regions[PROTECTED] = Py_XNewRef(slot_borrow(&r__protected, policy));
    regions[WINDOW] = Py_XNewRef(slot_borrow(&r__window, policy));
    regions[PROBATION] = Py_XNewRef(slot_borrow(&r__probation, policy));
    sketch = Py_XNewRef(slot_borrow(&r__sketch, policy));
    candidates = Py_XNewRef(slot_borrow(&r__candidates, policy));
    if (regions[0] == NULL || regions[1] == NULL || regions[2] == NULL || sketch == NULL || candidates == NULL) {
        goto done;
    }
    if (!PyList_Check(candidates)) {
        PyErr_SetString(PyExc_TypeError, "tinylfu _candidates must be a list");
        goto done;
    }
    /* Which region holds it, and its old weight (a strong reference: key.__eq__ is Python). */
    for (region = PROTECTED; region <= PROBATION; region++) {
        old = map_get(regions[region], key);
        if (old != NULL || PyErr_Occurred()) {
            break;
        }
    }
    if (old == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, key); /* as self._probation[key] */
        }
        goto done;
    }
    Py_ssize_t delta = PyLong_AsSsize_t(old);
    if (delta == -1 && PyErr_Occurred()) {
        goto done;
    }
    delta = 1 - delta;
    if (delta != 0) {
        if (map_set(regions[region], key, long_one) < 0) {
            goto done;
        }
        if (weights[region] != NULL) {
            *weights[region] += delta;
        }
        c->weight += delta;
    }
    /* on_access: count, then refresh. */
    if (sketch_increment_object(sketch, key) < 0) {
        goto done;
    }
    if (region != PROBATION) {
        if (map_move_to_end(regions[region], key, 1) < 0) {
            goto done;
        }
    }
    else if (1 > c->protected_max) {
        /* _promote: can never fit in protected; refreshed within probation instead. */
        if (map_move_to_end(regions[PROBATION], key, 1) < 0) {
            goto done;
        }
    }
    else {
        /* _promote: to protected's recent end, with its weight (1 by now). */
        Py_ssize_t weight;
        if (move_weighed(regions[PROBATION], regions[PROTECTED], key, &weight) < 0) {
            goto done;
        }
        c->protected_weight += weight;
        if (move_overflow(regions[PROTECTED], regions[PROBATION], &c->protected_weight, &c->protected_max, NULL) < 0) {
            goto done;
        }
    }
    c->hits += 1;
    if (c->hits + c->misses >= c->climb_period && call_method0(policy, str__climb) < 0) {
        goto done;
    }
    /* Then the overflow of protected and of the window, against bounds the climber may have moved. */
    if (move_overflow(regions[PROTECTED], regions[PROBATION], &c->protected_weight, &c->protected_max, NULL) < 0
        || PyList_SetSlice(candidates, 0, PyList_GET_SIZE(candidates), NULL) < 0
        || move_overflow(regions[WINDOW], regions[PROBATION], &c->window_weight, &c->window_max, candidates) < 0) {
        goto done;
    }
    result = 0;
done:
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(regions[i]);
    }
    Py_XDECREF(sketch);
    Py_XDECREF(candidates);
    Py_XDECREF(old);
    return result;
}

static PyObject *
tinylfu_update(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("tinylfu_update", nargs, 2) || tl_update(args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
tinylfu_insert(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("tinylfu_insert", nargs, 3)) {
        return NULL;
    }
    if (tl_insert(args[0], args[1], args[2]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The rest of TinyLFUPolicy._bury once the key is in `ghost`: forget its oldest keys past the
 * bound, with `entries` the keys now held. */
static int
trim_ghost(PyObject *ghost, Py_ssize_t entries)
{
    Py_ssize_t limit = (Py_ssize_t)(GHOST_SHARE * (double)entries);
    if (limit < MIN_GHOST) {
        limit = MIN_GHOST;
    }
    for (;;) {
        Py_ssize_t n = map_len(ghost);
        if (n <= limit) {
            return n < 0 ? -1 : 0;
        }
        PyObject *k = NULL, *w = NULL;
        int popped = map_pop_oldest(ghost, &k, &w);
        if (popped <= 0) {
            return popped;
        }
        Py_DECREF(k);
        Py_DECREF(w);
    }
}

PyDoc_STRVAR(tinylfu_evict_doc,
"tinylfu_evict(policy) -> key\n\nTinyLFUPolicy.evict, on the policy's state.");

static PyObject *
tl_evict(PyObject *policy)
{
    if (tl_bind(policy) < 0) {
        return NULL;
    }
    TLCounters *c = TLC(policy);
    PyObject *probation = NULL, *candidates = NULL, *candidate = NULL, *victim = NULL;
    PyObject *sketch = NULL, *weight = NULL, *result = NULL;
    probation = Py_XNewRef(slot_borrow(&r__probation, policy));
    candidates = Py_XNewRef(slot_borrow(&r__candidates, policy));
    sketch = Py_XNewRef(slot_borrow(&r__sketch, policy));
    if (probation == NULL || candidates == NULL || sketch == NULL) {
        goto done;
    }
    if (!PyList_Check(candidates)) {
        PyErr_SetString(PyExc_TypeError, "tinylfu _candidates must be a list");
        goto done;
    }
    while (PyList_GET_SIZE(candidates) > 0) {
        Py_ssize_t last = PyList_GET_SIZE(candidates) - 1;
        candidate = Py_NewRef(PyList_GET_ITEM(candidates, last));
        /* Still in probation? Its weight, read once (a strong reference: Python code runs below). */
        weight = map_get(probation, candidate);
        if (weight == NULL && PyErr_Occurred()) {
            goto done;
        }
        if (weight == NULL) {
            /* Promoted by a hit, or removed, since it left the window. */
            if (PyList_SetSlice(candidates, last, last + 1, NULL) < 0) {
                goto done;
            }
            Py_CLEAR(candidate);
            continue;
        }
        victim = map_oldest(probation);
        if (victim == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "tinylfu probation emptied while in use");
            }
            goto done;
        }
        Py_ssize_t candidate_weight = PyLong_AsSsize_t(weight);
        Py_CLEAR(weight);
        if (candidate_weight == -1 && PyErr_Occurred()) {
            goto done;
        }
        int same = victim == candidate;
        if (!same) {
            same = PyObject_RichCompareBool(victim, candidate, Py_EQ);
            if (same < 0) {
                goto done;
            }
        }
        int take_candidate;
        if (same || candidate_weight > c->capacity) {
            take_candidate = 1; /* nothing older to compete with, or a key that can never fit */
        }
        else {
            /* Both estimates from one view of the table. */
            sketch_view view;
            if (sketch_view_of(sketch, &view) < 0) {
                goto done;
            }
            int cf = sketch_estimate(&view, candidate);
            int vf = cf < 0 ? -1 : sketch_estimate(&view, victim);
            Py_DECREF(view.owner);
            if (vf < 0) {
                goto done;
            }
            int admit;
            if (cf > vf + (cf <= ADMIT_COLD_MAX)) {
                admit = 1;
            }
            else if (cf < ADMIT_HASHDOS_THRESHOLD) {
                admit = 0;
            }
            else {
                /* A warm candidate that lost: Python flips the 1/128 coin (and re-estimates). */
                PyObject *a = PyObject_CallMethodObjArgs(policy, str__admit, candidate, victim, NULL);
                if (a == NULL) {
                    goto done;
                }
                admit = PyObject_IsTrue(a);
                Py_DECREF(a);
                if (admit < 0) {
                    goto done;
                }
            }
            take_candidate = !admit;
        }
        if (take_candidate && PyList_SetSlice(candidates, last, last + 1, NULL) < 0) {
            goto done;
        }
        PyObject *key = take_candidate ? candidate : victim;
        /* Out of probation into its ghost list (_bury), then the counts and the ghost's bound. */
        PyObject *ghost = Py_XNewRef(slot_borrow(take_candidate ? &r__window_ghost : &r__main_ghost, policy));
        Py_ssize_t w;
        if (ghost == NULL || move_weighed(probation, ghost, key, &w) < 0) {
            Py_XDECREF(ghost);
            goto done;
        }
        c->weight -= w;
        c->entries -= 1;
        int trimmed = trim_ghost(ghost, c->entries);
        Py_DECREF(ghost);
        if (trimmed < 0) {
            goto done;
        }
        result = Py_NewRef(key);
        goto done;
    }
    /* No candidate: main's least recently used key, or the window's (Python). */
    result = PyObject_CallMethodNoArgs(policy, str__evict_main);
done:
    Py_XDECREF(probation);
    Py_XDECREF(candidates);
    Py_XDECREF(candidate);
    Py_XDECREF(victim);
    Py_XDECREF(sketch);
    Py_XDECREF(weight);
    return result;
}

static PyObject *
tinylfu_evict(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("tinylfu_evict", nargs, 1)) {
        return NULL;
    }
    return tl_evict(args[0]);
}

static PyMethodDef speedups_methods[] = {
    {"sketch_increment", (PyCFunction)(void (*)(void))sketch_increment, METH_FASTCALL,
     sketch_increment_doc},
    {"sketch_frequency", (PyCFunction)(void (*)(void))sketch_frequency, METH_FASTCALL,
     sketch_frequency_doc},
    {"tinylfu_replay", (PyCFunction)(void (*)(void))tinylfu_replay, METH_FASTCALL,
     tinylfu_replay_doc},
    {"fused_get", (PyCFunction)(void (*)(void))fused_get, METH_FASTCALL, fused_get_doc},
    {"lfu_replay", (PyCFunction)(void (*)(void))lfu_replay, METH_FASTCALL, lfu_replay_doc},
    {"fused_set", (PyCFunction)(void (*)(void))fused_set, METH_FASTCALL, fused_set_doc},
    {"tinylfu_record_miss", (PyCFunction)(void (*)(void))tinylfu_record_miss, METH_FASTCALL,
     tinylfu_record_miss_doc},
    {"tinylfu_insert", (PyCFunction)(void (*)(void))tinylfu_insert, METH_FASTCALL, tinylfu_insert_doc},
    {"tinylfu_evict", (PyCFunction)(void (*)(void))tinylfu_evict, METH_FASTCALL, tinylfu_evict_doc},
    {"tinylfu_update", (PyCFunction)(void (*)(void))tinylfu_update, METH_FASTCALL, tinylfu_update_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    /* Process-wide, like the static FusedGet type: made once, kept for the process's life. */
    if (str_active == NULL) {
        if (!(str_active = PyUnicode_InternFromString("active"))
            || !(str_hits = PyUnicode_InternFromString("hits"))
            || !(str_misses = PyUnicode_InternFromString("misses"))
            || !(str_value = PyUnicode_InternFromString("value"))
            || !(str_expires = PyUnicode_InternFromString("expires"))
            || !(str_record_miss = PyUnicode_InternFromString("_record_miss"))
            || !(str_count = PyUnicode_InternFromString("count"))
            || !(str_ring = PyUnicode_InternFromString("ring"))
            || !(str_bucket = PyUnicode_InternFromString("bucket"))
            || !(str_next = PyUnicode_InternFromString("next"))
            || !(str_prev = PyUnicode_InternFromString("prev"))
            || !(str_closed = PyUnicode_InternFromString("_closed"))
            || !(str_default_ttl = PyUnicode_InternFromString("default_ttl"))
            || !(str_c_writes = PyUnicode_InternFromString("_c_writes"))
            || !(str_set_latency = PyUnicode_InternFromString("set_latency"))
            || !(str_add = PyUnicode_InternFromString("add"))
            || !(str_heap = PyUnicode_InternFromString("_heap"))
            || !(str_policy = PyUnicode_InternFromString("_policy"))
            || !(str_max_entries = PyUnicode_InternFromString("max_entries"))
            || !(str_evictions = PyUnicode_InternFromString("evictions"))
            || !(str_purge_locked = PyUnicode_InternFromString("_purge_locked"))
            || !(str__expire = PyUnicode_InternFromString("_expire"))
            || !(str_enforce = PyUnicode_InternFromString("_enforce"))
            || !(str_popitem = PyUnicode_InternFromString("popitem"))
            || !(str_move_to_end = PyUnicode_InternFromString("move_to_end"))
            || !(str_sets = PyUnicode_InternFromString("sets"))
            || !(str_weight = PyUnicode_InternFromString("weight"))
            || !(str_version = PyUnicode_InternFromString("version"))
            || !(str_created = PyUnicode_InternFromString("created"))
            || !(str_updated = PyUnicode_InternFromString("updated"))
            || !(kwnames_over = Py_BuildValue("(s)", "over"))
            || !(str__sketch = PyUnicode_InternFromString("_sketch"))
            || !(str__last_miss = PyUnicode_InternFromString("_last_miss"))
            || !(str__window_ghost = PyUnicode_InternFromString("_window_ghost"))
            || !(str__main_ghost = PyUnicode_InternFromString("_main_ghost"))
            || !(str__climb = PyUnicode_InternFromString("_climb"))
            || !(str__window = PyUnicode_InternFromString("_window"))
            || !(str__grow_sketch = PyUnicode_InternFromString("_grow_sketch"))
            || !(str__candidates = PyUnicode_InternFromString("_candidates"))
            || !(str__probation = PyUnicode_InternFromString("_probation"))
            || !(str__protected = PyUnicode_InternFromString("_protected"))
            || !(str__admit = PyUnicode_InternFromString("_admit"))
            || !(str__evict_main = PyUnicode_InternFromString("_evict_main"))
            || !(str_reset = PyUnicode_InternFromString("reset"))
            || !(str__table = PyUnicode_InternFromString("_table"))
            || !(str__salt = PyUnicode_InternFromString("_salt"))
            || !(str__mask = PyUnicode_InternFromString("_mask"))
            || !(str__lock = PyUnicode_InternFromString("_lock"))
            || !(str__reads = PyUnicode_InternFromString("_reads"))
            || !(str__drain_reads = PyUnicode_InternFromString("_drain_reads"))
            || !(long_zero = PyLong_FromLong(0))
            || !(long_one = PyLong_FromLong(1))
            || !(long_eight = PyLong_FromLong(8))) {
            return -1;
        }
    }
    if (perf_counter == NULL) {
        PyObject *time = PyImport_ImportModule("time");
        perf_counter = time == NULL ? NULL : PyObject_GetAttrString(time, "perf_counter");
        Py_XDECREF(time);
        if (perf_counter == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&FusedGetType) < 0 || PyType_Ready(&FusedSetType) < 0 || PyType_Ready(&LMNodeType) < 0
        || PyType_Ready(&LMIterType) < 0 || PyType_Ready(&LinkedMapType) < 0 || PyType_Ready(&StoreLockType) < 0 || PyType_Ready(&TLCountersType) < 0
        || PyType_Ready(&SketchCountersType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "LinkedMap", (PyObject *)&LinkedMapType) < 0
        || PyModule_AddObjectRef(module, "StoreLock", (PyObject *)&StoreLockType) < 0
        || PyModule_AddObjectRef(module, "TinyLFUCounters", (PyObject *)&TLCountersType) < 0
        || PyModule_AddObjectRef(module, "SketchCounters", (PyObject *)&SketchCountersType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "FusedSet", (PyObject *)&FusedSetType) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "FusedGet", (PyObject *)&FusedGetType);
}

static struct PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "stratacache.core._speedups",
    .m_doc = "Compiled hot paths: TinyLFU's inner loops and the memory store's get (optional).",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
