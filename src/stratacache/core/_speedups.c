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
    return 0;
}

/* FrequencySketch.increment's counter update; 1 if a counter changed, 0 if not, -1 on error. */
static inline int
sketch_add(const sketch_view *v, PyObject *key)
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
    unsigned char *t = v->table;
    int added = 0;
    for (int row = 0; row < 4; row++) {
        unsigned char *c = t + row * v->width + a;
        if (*c < COUNTER_MAX) {
            *c += 1;
            added = 1;
        }
        a = (a + b) & mask;
    }
    return added;
}

static int
sketch_estimate(const sketch_view *v, PyObject *key)
{
    Py_hash_t kh = PyObject_Hash(key);
    if (kh == -1) {
        return -1;
    }
    Py_hash_t h = pair_hash(kh, v->salt);
    Py_ssize_t mask = v->mask;
    Py_ssize_t a = (Py_ssize_t)((Py_uhash_t)h & (Py_uhash_t)mask);
    Py_ssize_t b = (Py_ssize_t)(((Py_uhash_t)h >> 33) & (Py_uhash_t)mask) | 1;
    int low = COUNTER_MAX + 1;
    for (int row = 0; row < 4; row++) {
        int c = v->table[row * v->width + a];
        if (c < low) {
            low = c;
        }
        a = (a + b) & mask;
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
    if (!PyDict_Check(protected) || !PyDict_Check(window)) {
        PyErr_SetString(PyExc_TypeError, "protected and window must be dicts");
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
        PyObject *move = NULL;
        r = PyDict_Contains(protected, key);
        if (r > 0) {
            move = move_protected;
        }
        else if (r == 0) {
            r = PyDict_Contains(window, key);
            if (r > 0) {
                move = move_window;
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
        PyObject *res = PyObject_CallOneArg(move, key);
        Py_DECREF(key);
        if (res == NULL) {
            return NULL;
        }
        Py_DECREF(res);
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
    Py_ssize_t mask;
    int sliding;
    int miss_is_final;
    slot_ref active, hits, misses, value, expires; /* hooks.active, stats.hits, ... */
    PyObject *entry_type;
    vectorcallfunc vectorcall;
} FusedGet;

static PyObject *str_active, *str_hits, *str_misses, *str_value, *str_expires, *str_record_miss;
static PyObject *str_count, *str_keys, *str_next, *str_prev;

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
    PyObject *active = slot_get(&self->active, self->hooks);
    if (active == NULL) {
        return NULL;
    }
    int hooked = PyObject_IsTrue(active);
    Py_DECREF(active);
    if (hooked != 0) {
        return hooked < 0 ? NULL : PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    PyObject *k;
    if (self->prefix != NULL) {
        k = PyUnicode_Concat(self->prefix, key);
        if (k == NULL) {
            return NULL;
        }
    }
    else {
        k = Py_NewRef(key);
    }
    PyObject *entry = PyDict_GetItemWithError(self->data, k);
    if (entry == NULL) {
        Py_DECREF(k);
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (!self->miss_is_final) {
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        }
        PyObject *record_miss = PyObject_GetAttr(self->store, str_record_miss);
        if (record_miss == NULL) {
            return NULL;
        }
        int counted_by_policy = record_miss != Py_None;
        Py_DECREF(record_miss);
        Py_ssize_t n = get_counter(&self->misses, self->stats);
        if (n == -1 && PyErr_Occurred()) {
            return NULL;
        }
        n += 1;
        if (counted_by_policy || (n & self->mask) == 0) {
            return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
        }
        if (set_counter(&self->misses, self->stats, n) < 0) {
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
"`entry` is an instance of the entry class, whose slots `value` and `expires` are read.\n"
"A callable get(key, default=None) that serves plain hits (and, when store._record_miss is\n"
"None, misses) of the map `data` and passes every other call to `slow`; see the C source.");

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
    FusedGet *self = PyObject_GC_New(FusedGet, &FusedGetType);
    if (self == NULL) {
        return NULL;
    }
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
 * lfu_replay: LFUPolicy.on_access_many's loop (policies/lfu.py), on the policy's own buckets.
 *
 * A hit moves its key from the bucket for count c to the bucket for c + 1, which is the next
 * bucket or a new one linked after it, and unlinks the old bucket if it emptied. Creating a
 * bucket (~0.5% of hits in a steady state) is left to Python's LFUPolicy._link_after, and the
 * end of an aging epoch stops the loop so that Python runs _age(); the rest is done here on the
 * _Bucket slots (count, keys, next, prev) and the `where` dict.
 */

static slot_ref b_count, b_keys, b_next, b_prev;
static PyTypeObject *bucket_type; /* the type b_* were made for; a strong reference */

/* bucket.<ref> as a borrowed reference (the bucket holds it), or NULL with an exception. */
static inline PyObject *
bucket_get(const slot_ref *ref, PyObject *bucket)
{
    PyObject *v = slot_get(ref, bucket);
    if (v != NULL) {
        Py_DECREF(v); /* still referenced by the bucket's slot */
    }
    return v;
}

/* One on_access: 0 done, -1 error. Runs no Python code but _link_after and keys' __eq__. */
static int
lfu_access(PyObject *key, PyObject *where, PyObject *link_after)
{
    PyObject *bucket = PyDict_GetItemWithError(where, key);
    if (bucket == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return -1;
    }
    Py_INCREF(bucket);
    PyObject *target = NULL, *keys = NULL, *weight = NULL, *want = NULL;
    int rc = -1;
    PyObject *count = bucket_get(&b_count, bucket);
    if (count == NULL) {
        goto done;
    }
    Py_ssize_t c = PyLong_AsSsize_t(count);
    if (c == -1 && PyErr_Occurred()) {
        goto done;
    }
    PyObject *next = bucket_get(&b_next, bucket);
    if (next == NULL) {
        goto done;
    }
    PyObject *next_count = bucket_get(&b_count, next);
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
        want = PyLong_FromSsize_t(c + 1);
        if (want == NULL) {
            goto done;
        }
        PyObject *call_args[2] = {bucket, want};
        target = PyObject_Vectorcall(link_after, call_args, 2, NULL);
        if (target == NULL) {
            goto done;
        }
    }
    keys = slot_get(&b_keys, bucket);
    if (keys == NULL) {
        goto done;
    }
    PyObject *target_keys = bucket_get(&b_keys, target);
    if (target_keys == NULL) {
        goto done;
    }
    /* target.keys[key] = keys.pop(key); where[key] = target */
    weight = PyObject_GetItem(keys, key);
    if (weight == NULL || PyObject_DelItem(keys, key) < 0 || PyObject_SetItem(target_keys, key, weight) < 0
        || PyDict_SetItem(where, key, target) < 0) {
        goto done;
    }
    Py_ssize_t left = PyObject_Length(keys);
    if (left < 0) {
        goto done;
    }
    if (left == 0) {
        /* Unlink the emptied bucket: prev.next = next; next.prev = prev. */
        PyObject *prev = slot_get(&b_prev, bucket);
        PyObject *nxt = slot_get(&b_next, bucket);
        int failed = prev == NULL || nxt == NULL || slot_set(&b_next, prev, nxt) < 0
                     || slot_set(&b_prev, nxt, prev) < 0;
        Py_XDECREF(prev);
        Py_XDECREF(nxt);
        if (failed) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(bucket);
    Py_XDECREF(target);
    Py_XDECREF(keys);
    Py_XDECREF(weight);
    Py_XDECREF(want);
    return rc;
}

PyDoc_STRVAR(lfu_replay_doc,
"lfu_replay(keys, start, tracked, where, bucket_type, link_after, left) -> (index, done)\n\n"
"LFUPolicy.on_access for each key of keys[start:] that is in `tracked`, in order, until\n"
"`done` (the hits replayed) reaches `left` (the aging epoch is over: Python ages the counts)\n"
"or the keys run out; `index` is where to resume.");

static PyObject *
lfu_replay(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("lfu_replay", nargs, 7)) {
        return NULL;
    }
    PyObject *keys = args[0];
    PyObject *tracked = args[2];
    PyObject *where = args[3];
    PyObject *type = args[4];
    PyObject *link_after = args[5];
    if (!PyList_Check(keys)) {
        PyErr_Format(PyExc_TypeError, "keys must be a list, got %.100s", Py_TYPE(keys)->tp_name);
        return NULL;
    }
    if (!PyDict_Check(where) || !PyType_Check(type) || !PyCallable_Check(link_after)) {
        PyErr_SetString(PyExc_TypeError, "where must be a dict, bucket_type a type, link_after callable");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t left = PyLong_AsSsize_t(args[6]);
    if (left == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((PyTypeObject *)type != bucket_type) {
        slot_ref_init_type(&b_count, (PyTypeObject *)type, str_count);
        slot_ref_init_type(&b_keys, (PyTypeObject *)type, str_keys);
        slot_ref_init_type(&b_next, (PyTypeObject *)type, str_next);
        slot_ref_init_type(&b_prev, (PyTypeObject *)type, str_prev);
        Py_INCREF(type);
        Py_XSETREF(bucket_type, (PyTypeObject *)type);
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

static PyMethodDef speedups_methods[] = {
    {"sketch_increment", (PyCFunction)(void (*)(void))sketch_increment, METH_FASTCALL,
     sketch_increment_doc},
    {"sketch_frequency", (PyCFunction)(void (*)(void))sketch_frequency, METH_FASTCALL,
     sketch_frequency_doc},
    {"tinylfu_replay", (PyCFunction)(void (*)(void))tinylfu_replay, METH_FASTCALL,
     tinylfu_replay_doc},
    {"fused_get", (PyCFunction)(void (*)(void))fused_get, METH_FASTCALL, fused_get_doc},
    {"lfu_replay", (PyCFunction)(void (*)(void))lfu_replay, METH_FASTCALL, lfu_replay_doc},
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
            || !(str_keys = PyUnicode_InternFromString("keys"))
            || !(str_next = PyUnicode_InternFromString("next"))
            || !(str_prev = PyUnicode_InternFromString("prev"))) {
            return -1;
        }
    }
    if (PyType_Ready(&FusedGetType) < 0) {
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
