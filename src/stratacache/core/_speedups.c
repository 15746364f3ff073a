/* Optional compiled helpers; the package runs the same logic in Python without them.
 *
 * Only self-contained pieces live here, each with a narrow API and no knowledge of the Python
 * classes that use them: the count-min sketch's counter update and estimate (a bytearray, a
 * salt and a mask in, a number out), TinyLFU's hit replay (lists, maps and callables passed
 * in), the LinkedMap ordered map (_linkedmap.h) and the StoreLock lock (_storelock.h). No
 * code here reads an attribute of a Python object by name or by slot offset: every rule of
 * the memory store's get and set is Python, written once in core/memory_store.py.
 * tests/test_speedups.py drives each helper and its Python twin over the same operations.
 *
 * The counter indexes must equal Python's, which hashes the tuple (key, salt): pair_hash()
 * below is CPython's tuple hash (Objects/tupleobject.c, unchanged since 3.8) for two items,
 * computed without building the tuple. Only 64-bit hashes are supported; elsewhere the build
 * fails and the package uses its pure-Python code (the extension is optional).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h> /* offsetof */

#if SIZEOF_PY_HASH_T < 8
#error "stratacache speedups need 64-bit hashes; the pure-Python policies are used instead"
#endif

#define XXPRIME_1 ((Py_uhash_t)11400714785074694791ULL)
#define XXPRIME_2 ((Py_uhash_t)14029467366897019727ULL)
#define XXPRIME_5 ((Py_uhash_t)2870177450012600261ULL)
#define XXROTATE(x) (((x) << 31) | ((x) >> 33))
#define COUNTER_MAX 15

#include "_linkedmap.h" /* the ordered map of the TinyLFU regions, and the map_* helpers */
#include "_storelock.h" /* the memory store's lock */

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

static PyMethodDef speedups_methods[] = {
    {"sketch_increment", (PyCFunction)(void (*)(void))sketch_increment, METH_FASTCALL,
     sketch_increment_doc},
    {"sketch_frequency", (PyCFunction)(void (*)(void))sketch_frequency, METH_FASTCALL,
     sketch_frequency_doc},
    {"tinylfu_replay", (PyCFunction)(void (*)(void))tinylfu_replay, METH_FASTCALL,
     tinylfu_replay_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    if (PyType_Ready(&LMNodeType) < 0 || PyType_Ready(&LMIterType) < 0 || PyType_Ready(&LinkedMapType) < 0
        || PyType_Ready(&StoreLockType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "LinkedMap", (PyObject *)&LinkedMapType) < 0
        || PyModule_AddObjectRef(module, "StoreLock", (PyObject *)&StoreLockType) < 0) {
        return -1;
    }
    return 0;
}

static struct PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "stratacache.core._speedups",
    .m_doc = "Self-contained compiled helpers: the count-min sketch's counters, TinyLFU's hit replay, "
             "LinkedMap and StoreLock (optional).",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
