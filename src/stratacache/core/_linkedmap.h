/* LinkedMap: the part of collections.OrderedDict that the TinyLFU policy uses, a self-contained
 * type. Included once, by _speedups.c (one extension module, one translation unit).
 *
 * Why not OrderedDict: each evicting write moves keys between the policy's ordered regions
 * (window -> probation, probation -> a ghost list) and trims a ghost list, and every buffered
 * hit moves a key to the recent end of its region (tinylfu_replay does that without a method
 * call). The measured difference is in docs/memory-engine.md and docs/benchmarks.md.
 *
 * Layout: `index` is a dict key -> LMNode; the nodes form a doubly linked list, oldest first.
 * The index owns the nodes (the list's pointers are borrowed), and a node owns its key and
 * value. A node in the list is always in the index, so the list never points at a freed
 * node, whatever a key's __eq__ (Python code, called by the dict) does to the map meanwhile;
 * such an __eq__ can make an operation fail, and an error in a delete can leave that key
 * indexed but out of the order. Iterators check `state`, bumped by every change of order
 * or membership, before each step (as OrderedDict does: "mutated during iteration").
 *
 * Python sees the OrderedDict subset the policy and its tests use: len, in, [k], [k] = v,
 * del, iter (keys, oldest first), get, pop, popitem(last=True), move_to_end(key, last=True),
 * clear, keys/values/items (lists, in order) and a repr. tests/test_speedups.py holds it to an
 * OrderedDict model.
 */

typedef struct lm_node {
    PyObject_HEAD
    PyObject *key;
    PyObject *value;
    struct lm_node *prev, *next; /* borrowed: the index owns the node */
    int linked;
} LMNode;

static void
lm_node_dealloc(LMNode *node)
{
    Py_XDECREF(node->key);
    Py_XDECREF(node->value);
    Py_TYPE(node)->tp_free((PyObject *)node);
}

/* Not GC-tracked: a node is reachable only through its map, whose traverse visits the values
 * (and whose index dict visits the keys). */
static PyTypeObject LMNodeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups._LinkedMapNode",
    .tp_basicsize = sizeof(LMNode),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)lm_node_dealloc,
};

typedef struct {
    PyObject_HEAD
    PyObject *index;     /* dict: key -> LMNode */
    LMNode *first, *last; /* borrowed; NULL when empty */
    size_t state;
} LinkedMap;

static PyTypeObject LinkedMapType;

#define LinkedMap_Check(op) Py_IS_TYPE(op, &LinkedMapType)
/* A LinkedMap whose index is there (the GC's tp_clear drops it in a cycle). */
#define LinkedMap_Ready(op) (LinkedMap_Check(op) && ((LinkedMap *)(op))->index != NULL)

static void
lm_link(LinkedMap *m, LMNode *node, int last)
{
    if (last) {
        node->prev = m->last;
        node->next = NULL;
        if (m->last != NULL) {
            m->last->next = node;
        }
        else {
            m->first = node;
        }
        m->last = node;
    }
    else {
        node->next = m->first;
        node->prev = NULL;
        if (m->first != NULL) {
            m->first->prev = node;
        }
        else {
            m->last = node;
        }
        m->first = node;
    }
    node->linked = 1;
    m->state++;
}

static void
lm_unlink(LinkedMap *m, LMNode *node)
{
    if (!node->linked) {
        return;
    }
    if (node->prev != NULL) {
        node->prev->next = node->next;
    }
    else {
        m->first = node->next;
    }
    if (node->next != NULL) {
        node->next->prev = node->prev;
    }
    else {
        m->last = node->prev;
    }
    node->prev = node->next = NULL;
    node->linked = 0;
    m->state++;
}

/* The node of `key` (borrowed), or NULL: absent (no exception) or an error. */
static inline LMNode *
lm_lookup(LinkedMap *m, PyObject *key)
{
    return (LMNode *)PyDict_GetItemWithError(m->index, key);
}

/* m[key] = value: an existing key keeps its place (as in OrderedDict); a new one goes last.
 * One dict operation either way (setdefault with a fresh node): the TinyLFU helpers set keys
 * that are new far more often than not, and a lookup first would be a second probe for them. */
static int
lm_set(LinkedMap *m, PyObject *key, PyObject *value)
{
    LMNode *fresh = PyObject_New(LMNode, &LMNodeType);
    if (fresh == NULL) {
        return -1;
    }
    fresh->key = Py_NewRef(key);
    fresh->value = NULL;
    fresh->prev = fresh->next = NULL;
    fresh->linked = 0;
    /* Whatever the key's __eq__ does meanwhile, the index ends up holding one node for the
     * key, and that is the node updated below. */
    LMNode *node = (LMNode *)PyDict_SetDefault(m->index, key, (PyObject *)fresh);
    if (node == fresh) {
        lm_link(m, node, 1);
    }
    Py_DECREF(fresh); /* the index holds it, or it was not needed */
    if (node == NULL) {
        return -1;
    }
    Py_XSETREF(node->value, Py_NewRef(value));
    return 0;
}

/* Remove `node` (of this map) from the list and the index; *value receives its value (a new
 * reference) when not NULL. */
static int
lm_remove(LinkedMap *m, LMNode *node, PyObject **value)
{
    Py_INCREF(node);
    lm_unlink(m, node);
    int r = PyDict_DelItem(m->index, node->key);
    /* A key's __eq__ may have put the node back in the list meanwhile, or made the delete
     * fail after removing the node some other way: either way it leaves the list, which
     * must never hold a node the index may have dropped (an error can leave a key indexed
     * but out of the order; never a freed node in the list). */
    lm_unlink(m, node);
    if (r == 0 && value != NULL) {
        *value = Py_NewRef(node->value);
    }
    Py_DECREF(node);
    return r;
}

/* del m[key] / m.pop(key): 1 removed, 0 absent (no exception), -1 error. */
static int
lm_pop(LinkedMap *m, PyObject *key, PyObject **value)
{
    LMNode *node = lm_lookup(m, key);
    if (node == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return lm_remove(m, node, value) < 0 ? -1 : 1;
}

/* popitem(last=False) without the tuple: the oldest key and its value (new references).
 * 1 popped, 0 empty, -1 error. */
static int
lm_pop_end(LinkedMap *m, int last, PyObject **key, PyObject **value)
{
    LMNode *node = last ? m->last : m->first;
    if (node == NULL) {
        return 0;
    }
    PyObject *k = Py_NewRef(node->key);
    if (lm_remove(m, node, value) < 0) {
        Py_DECREF(k);
        return -1;
    }
    *key = k;
    return 1;
}

/* move_to_end(key, last): 1 moved, 0 absent (no exception), -1 error. */
static int
lm_move(LinkedMap *m, PyObject *key, int last)
{
    LMNode *node = lm_lookup(m, key);
    if (node == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if ((last ? m->last : m->first) != node) {
        lm_unlink(m, node);
        lm_link(m, node, last);
    }
    return 1;
}

static int
lm_clear_all(LinkedMap *m)
{
    /* The list first: nothing may point at a node once the index lets go of it. The index
     * stays the same dict (cleared in place), because an operation under way -- a key's
     * __eq__ called this -- is working on it: the dict itself copes with being cleared
     * under a lookup, a replaced one could be freed under it. */
    m->first = m->last = NULL;
    m->state++;
    PyDict_Clear(m->index);
    return 0;
}

/* -- the Python face ------------------------------------------------------------------------ */

static PyObject *
lm_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((args != NULL && PyTuple_GET_SIZE(args) > 0) || (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0)) {
        PyErr_SetString(PyExc_TypeError, "LinkedMap() takes no arguments");
        return NULL;
    }
    LinkedMap *m = (LinkedMap *)type->tp_alloc(type, 0);
    if (m == NULL) {
        return NULL;
    }
    m->index = PyDict_New();
    if (m->index == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    m->first = m->last = NULL;
    m->state = 0;
    return (PyObject *)m;
}

static int
lm_traverse(LinkedMap *m, visitproc visit, void *arg)
{
    Py_VISIT(m->index);
    for (LMNode *node = m->first; node != NULL; node = node->next) {
        Py_VISIT(node->value);
    }
    return 0;
}

static int
lm_tp_clear(LinkedMap *m)
{
    m->first = m->last = NULL;
    m->state++;
    Py_CLEAR(m->index);
    return 0;
}

static void
lm_dealloc(LinkedMap *m)
{
    PyObject_GC_UnTrack(m);
    lm_tp_clear(m);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

/* The index is NULL only after the GC cleared a map in a cycle. */
static int
lm_ready(LinkedMap *m)
{
    if (m->index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LinkedMap used after it was cleared by the garbage collector");
        return 0;
    }
    return 1;
}

static Py_ssize_t
lm_length(LinkedMap *m)
{
    return lm_ready(m) ? PyDict_GET_SIZE(m->index) : -1;
}

static int
lm_contains(LinkedMap *m, PyObject *key)
{
    return lm_ready(m) ? PyDict_Contains(m->index, key) : -1;
}

static PyObject *
lm_subscript(LinkedMap *m, PyObject *key)
{
    if (!lm_ready(m)) {
        return NULL;
    }
    LMNode *node = lm_lookup(m, key);
    if (node == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return NULL;
    }
    return Py_NewRef(node->value);
}

static int
lm_ass_subscript(LinkedMap *m, PyObject *key, PyObject *value)
{
    if (!lm_ready(m)) {
        return -1;
    }
    if (value != NULL) {
        return lm_set(m, key, value);
    }
    int r = lm_pop(m, key, NULL);
    if (r == 0) {
        PyErr_SetObject(PyExc_KeyError, key);
    }
    return r > 0 ? 0 : -1;
}

/* 1 when nargs is 1 or 2 (get and pop), else 0 with a TypeError. */
static int
lm_one_or_two(const char *name, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 or 2 arguments (%zd given)", name, nargs);
        return 0;
    }
    return 1;
}

static PyObject *
lm_get(LinkedMap *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (!lm_one_or_two("get", nargs) || !lm_ready(m)) {
        return NULL;
    }
    LMNode *node = lm_lookup(m, args[0]);
    if (node == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(nargs > 1 ? args[1] : Py_None);
    }
    return Py_NewRef(node->value);
}

static PyObject *
lm_pop_method(LinkedMap *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (!lm_one_or_two("pop", nargs) || !lm_ready(m)) {
        return NULL;
    }
    PyObject *value = NULL;
    int r = lm_pop(m, args[0], &value);
    if (r < 0) {
        return NULL;
    }
    if (r == 0) {
        if (nargs > 1) {
            return Py_NewRef(args[1]);
        }
        PyErr_SetObject(PyExc_KeyError, args[0]);
        return NULL;
    }
    return value;
}

/* The `last` argument of popitem and move_to_end: positional or keyword, default True. */
static int
lm_last_arg(const char *name, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t at)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw > at + 1 || nargs < at) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd or %zd arguments", name, at, at + 1);
        return -1;
    }
    if (nkw == 1) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(kw) || PyUnicode_CompareWithASCIIString(kw, "last") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", name, kw);
            return -1;
        }
    }
    return nargs + nkw > at ? PyObject_IsTrue(args[at]) : 1;
}

static PyObject *
lm_popitem(LinkedMap *m, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    int last = lm_last_arg("popitem", args, PyVectorcall_NARGS(nargsf), kwnames, 0);
    if (last < 0 || !lm_ready(m)) {
        return NULL;
    }
    PyObject *key = NULL, *value = NULL;
    int r = lm_pop_end(m, last, &key, &value);
    if (r <= 0) {
        if (r == 0) {
            PyErr_SetString(PyExc_KeyError, "dictionary is empty");
        }
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return pair;
}

static PyObject *
lm_move_to_end(LinkedMap *m, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "move_to_end() missing required argument 'key'");
        return NULL;
    }
    int last = lm_last_arg("move_to_end", args, nargs, kwnames, 1);
    if (last < 0 || !lm_ready(m)) {
        return NULL;
    }
    int r = lm_move(m, args[0], last);
    if (r == 0) {
        PyErr_SetObject(PyExc_KeyError, args[0]);
    }
    return r <= 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
lm_clear_method(LinkedMap *m, PyObject *unused)
{
    return lm_clear_all(m) < 0 ? NULL : Py_NewRef(Py_None);
}

/* keys (0), values (1) or items (2), oldest first, as a list. */
static PyObject *
lm_list(LinkedMap *m, int what)
{
    if (!lm_ready(m)) {
        return NULL;
    }
    PyObject *out = PyList_New(PyDict_GET_SIZE(m->index));
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    for (LMNode *node = m->first; node != NULL && i < PyList_GET_SIZE(out); node = node->next, i++) {
        PyObject *item = what == 0   ? Py_NewRef(node->key)
                         : what == 1 ? Py_NewRef(node->value)
                                     : PyTuple_Pack(2, node->key, node->value);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyObject *
lm_keys(LinkedMap *m, PyObject *unused)
{
    return lm_list(m, 0);
}

static PyObject *
lm_values(LinkedMap *m, PyObject *unused)
{
    return lm_list(m, 1);
}

static PyObject *
lm_items(LinkedMap *m, PyObject *unused)
{
    return lm_list(m, 2);
}

static PyObject *
lm_repr(LinkedMap *m)
{
    PyObject *items = lm_list(m, 2);
    if (items == NULL) {
        return NULL;
    }
    PyObject *r = PyUnicode_FromFormat("LinkedMap(%R)", items);
    Py_DECREF(items);
    return r;
}

/* Iteration over the keys, oldest first. */
typedef struct {
    PyObject_HEAD
    LinkedMap *map;
    LMNode *next; /* borrowed: valid while map->state == state */
    size_t state;
} LMIter;

static void
lm_iter_dealloc(LMIter *it)
{
    PyObject_GC_UnTrack(it);
    Py_XDECREF(it->map);
    PyObject_GC_Del(it);
}

static int
lm_iter_traverse(LMIter *it, visitproc visit, void *arg)
{
    Py_VISIT(it->map);
    return 0;
}

static PyObject *
lm_iter_next(LMIter *it)
{
    if (it->map == NULL) {
        return NULL;
    }
    if (it->map->state != it->state) {
        Py_CLEAR(it->map);
        PyErr_SetString(PyExc_RuntimeError, "LinkedMap mutated during iteration");
        return NULL;
    }
    LMNode *node = it->next;
    if (node == NULL) {
        Py_CLEAR(it->map);
        return NULL;
    }
    it->next = node->next;
    return Py_NewRef(node->key);
}

static PyTypeObject LMIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups._LinkedMapIterator",
    .tp_basicsize = sizeof(LMIter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)lm_iter_dealloc,
    .tp_traverse = (traverseproc)lm_iter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)lm_iter_next,
};

static PyObject *
lm_iter(LinkedMap *m)
{
    if (!lm_ready(m)) {
        return NULL;
    }
    LMIter *it = PyObject_GC_New(LMIter, &LMIterType);
    if (it == NULL) {
        return NULL;
    }
    it->map = (LinkedMap *)Py_NewRef(m);
    it->next = m->first;
    it->state = m->state;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyMappingMethods lm_as_mapping = {
    .mp_length = (lenfunc)lm_length,
    .mp_subscript = (binaryfunc)lm_subscript,
    .mp_ass_subscript = (objobjargproc)lm_ass_subscript,
};

static PySequenceMethods lm_as_sequence = {
    .sq_contains = (objobjproc)lm_contains,
};

static PyMethodDef lm_methods[] = {
    {"get", (PyCFunction)(void (*)(void))lm_get, METH_FASTCALL, "get(key, default=None): the value of key, or default."},
    {"pop", (PyCFunction)(void (*)(void))lm_pop_method, METH_FASTCALL,
     "pop(key[, default]): remove key and return its value (default, or KeyError, when absent)."},
    {"popitem", (PyCFunction)(void (*)(void))lm_popitem, METH_FASTCALL | METH_KEYWORDS,
     "popitem(last=True): remove and return the newest (key, value) pair, or the oldest."},
    {"move_to_end", (PyCFunction)(void (*)(void))lm_move_to_end, METH_FASTCALL | METH_KEYWORDS,
     "move_to_end(key, last=True): make key the newest, or the oldest (KeyError when absent)."},
    {"clear", (PyCFunction)lm_clear_method, METH_NOARGS, "clear(): remove every key."},
    {"keys", (PyCFunction)lm_keys, METH_NOARGS, "keys(): a list of the keys, oldest first."},
    {"values", (PyCFunction)lm_values, METH_NOARGS, "values(): a list of the values, oldest first."},
    {"items", (PyCFunction)lm_items, METH_NOARGS, "items(): a list of (key, value) pairs, oldest first."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(linked_map_doc,
"LinkedMap()\n--\n\n"
"An insertion-ordered map with the OrderedDict operations TinyLFU uses (len, in, [], del, iter,\n"
"get, pop, popitem(last=True), move_to_end(key, last=True), clear, keys/values/items as\n"
"lists), whose order the C helpers reach directly.");

static PyTypeObject LinkedMapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups.LinkedMap",
    .tp_doc = linked_map_doc,
    .tp_basicsize = sizeof(LinkedMap),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = lm_new,
    .tp_dealloc = (destructor)lm_dealloc,
    .tp_traverse = (traverseproc)lm_traverse,
    .tp_clear = (inquiry)lm_tp_clear,
    .tp_repr = (reprfunc)lm_repr,
    .tp_iter = (getiterfunc)lm_iter,
    .tp_as_mapping = &lm_as_mapping,
    .tp_as_sequence = &lm_as_sequence,
    .tp_methods = lm_methods,
    .tp_hash = PyObject_HashNotImplemented,
};

/* -- for tinylfu_replay: move_to_end over a LinkedMap or any other mapping ------------------ */

/* map.move_to_end(key, last) */
static int
map_move_to_end(PyObject *map, PyObject *key, int last)
{
    if (LinkedMap_Ready(map)) {
        int r = lm_move((LinkedMap *)map, key, last);
        if (r == 0) {
            PyErr_SetObject(PyExc_KeyError, key);
        }
        return r > 0 ? 0 : -1;
    }
    PyObject *r = PyObject_CallMethod(map, "move_to_end", "OO", key, last ? Py_True : Py_False);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}
