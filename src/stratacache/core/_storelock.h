/* StoreLock: the memory store's lock, with threading.Lock's interface and a cheaper call.
 * Included once, by _speedups.c.
 *
 * Why not threading.Lock: its acquire() is a METH_VARARGS|METH_KEYWORDS method, so every call
 * builds an argument tuple and parses it; here acquire() and release() are vectorcall methods
 * (a non-blocking attempt first, and only under contention a wait with the GIL released).
 * The cost difference is measured in docs/benchmarks.md.
 *
 * Python sees threading.Lock's interface: acquire(blocking=True, timeout=-1), release(),
 * locked(), `with`, a repr, weak references. Like threading.Lock it is not reentrant, may be
 * released by another thread, and a wait with no timeout is interrupted by signals (their
 * handlers run, and an exception from one ends the wait). tests/test_speedups.py holds it to
 * threading.Lock's behaviour.
 */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char locked;
    PyObject *weakreflist;
} StoreLock;

static PyTypeObject StoreLockType;

#define StoreLock_Check(op) Py_IS_TYPE(op, &StoreLockType)

/* Wait for the lock: timeout_us < 0 without a limit, 0 not at all. PY_LOCK_ACQUIRED,
 * PY_LOCK_FAILURE (the time ran out), or PY_LOCK_INTR with an exception set (a signal
 * handler raised). The GIL is released while waiting. */
static PyLockStatus
slock_wait(StoreLock *self, long long timeout_us)
{
    PyLockStatus r = PyThread_acquire_lock_timed(self->lock, 0, 0);
    while (r == PY_LOCK_FAILURE && timeout_us != 0) {
        /* A wait with a limit is not interrupted (it ends anyway); one without is, so that
         * Ctrl-C reaches a thread stuck on a lock, as with threading.Lock. */
        int interruptible = timeout_us < 0;
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(self->lock, timeout_us, interruptible);
        Py_END_ALLOW_THREADS
        if (r == PY_LOCK_INTR) {
            if (Py_MakePendingCalls() < 0) {
                return PY_LOCK_INTR;
            }
            r = PY_LOCK_FAILURE; /* no handler raised: wait again */
        }
        else {
            break;
        }
    }
    if (r == PY_LOCK_ACQUIRED) {
        self->locked = 1;
    }
    return r;
}

static PyObject *
slock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds != NULL && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "StoreLock() takes no arguments");
        return NULL;
    }
    StoreLock *self = (StoreLock *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
slock_dealloc(StoreLock *self)
{
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->lock != NULL) {
        if (self->locked) {
            PyThread_release_lock(self->lock); /* a held lock cannot be freed */
        }
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* acquire(blocking=True, timeout=-1) -> bool, as threading.Lock.acquire. */
static PyObject *
slock_acquire(StoreLock *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking_obj = NULL, *timeout_obj = NULL;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (nargs > 0) {
        blocking_obj = args[0];
    }
    if (nargs > 1) {
        timeout_obj = args[1];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = PyUnicode_CompareWithASCIIString(name, "blocking") == 0  ? &blocking_obj
                          : PyUnicode_CompareWithASCIIString(name, "timeout") == 0 ? &timeout_obj
                                                                                    : NULL;
        if (slot == NULL) {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "acquire() got multiple values for argument '%U'", name);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    int blocking = blocking_obj == NULL ? 1 : PyObject_IsTrue(blocking_obj);
    if (blocking < 0) {
        return NULL;
    }
    double timeout = -1.0;
    if (timeout_obj != NULL) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (!blocking && timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be positive");
        return NULL;
    }
    long long timeout_us = -1;
    if (!blocking) {
        timeout_us = 0;
    }
    else if (timeout >= 0) {
        if (!(timeout * 1e6 < (double)PY_TIMEOUT_MAX)) { /* also refuses a NaN */
            PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
            return NULL;
        }
        timeout_us = (long long)(timeout * 1e6);
        if (timeout_us == 0 && timeout > 0) {
            timeout_us = 1; /* a tiny positive timeout still waits, as threading.Lock's does */
        }
    }
    PyLockStatus r = slock_wait(self, timeout_us);
    if (r == PY_LOCK_INTR) {
        return NULL;
    }
    return PyBool_FromLong(r == PY_LOCK_ACQUIRED);
}

static PyObject *
slock_release(StoreLock *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    self->locked = 0;
    PyThread_release_lock(self->lock);
    Py_RETURN_NONE;
}

static PyObject *
slock_locked(StoreLock *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
slock_enter(StoreLock *self, PyObject *Py_UNUSED(ignored))
{
    if (slock_wait(self, -1) == PY_LOCK_INTR) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
slock_exit(StoreLock *self, PyObject *const *args, Py_ssize_t nargs)
{
    return slock_release(self, NULL);
}

static PyObject *
slock_repr(StoreLock *self)
{
    return PyUnicode_FromFormat("<%s %s object at %p>", self->locked ? "locked" : "unlocked",
                                Py_TYPE(self)->tp_name, self);
}

static PyMethodDef slock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))slock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: take the lock, as threading.Lock.acquire."},
    {"release", (PyCFunction)slock_release, METH_NOARGS, "Give the lock back (RuntimeError if not held)."},
    {"locked", (PyCFunction)slock_locked, METH_NOARGS, "True while some thread holds the lock."},
    {"__enter__", (PyCFunction)slock_enter, METH_NOARGS, "Take the lock (waiting as long as needed)."},
    {"__exit__", (PyCFunction)(void (*)(void))slock_exit, METH_FASTCALL, "Give the lock back."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StoreLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stratacache.core._speedups.StoreLock",
    .tp_doc = PyDoc_STR("StoreLock()\n--\n\nA non-reentrant lock with threading.Lock's interface; the memory "
                        "store's lock (cheaper to take and give than threading.Lock)."),
    .tp_basicsize = sizeof(StoreLock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = slock_new,
    .tp_dealloc = (destructor)slock_dealloc,
    .tp_repr = (reprfunc)slock_repr,
    .tp_methods = slock_methods,
    .tp_weaklistoffset = offsetof(StoreLock, weakreflist),
};
