// The plan executor (_C.Plan), contract in /work/wt/PLAN.md: steps recorded by kernel name and
// buffer slot, bound once (every step's contract asserted by its family's prep, as in an eager
// call), run in one call with the GIL released and nothing allocated, calling the same `run`
// as the eager binding of each kernel. A replay therefore gives the eager call's bits.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <deque>

#include "frontend.h"
#include "kernels/threads.h"
#include "runtime.h"

namespace agt_front {

struct Step {
  const Kernel* k;
  std::vector<std::vector<int>> ins;  // slots per array parameter; empty + none for None
  std::vector<char> none;
  std::vector<int> outs;
  Call call;  // attrs set at add; arrays and dims at bind
  std::vector<std::pair<int, int>> live;
  std::vector<Arr> arena;
};

inline bool overlaps(const Arr& a, const Arr& b) {
  const auto bytes = [](const Arr& x) { return x.size * (x.dt == DT::F32 ? 4 : 8); };
  const char *pa = static_cast<const char*>(a.data), *pb = static_cast<const char*>(b.data);
  return bytes(a) && bytes(b) && pa < pb + bytes(b) && pb < pa + bytes(a);
}

class Plan {
 public:
  void add(const std::string& name, const py::list& ins, const std::vector<int>& outs,
           const py::list& attrs, const std::vector<std::pair<int, int>>& live) {
    const auto it = by_name().find(name);
    if (it == by_name().end()) throw py::key_error(name);
    const Kernel& k = *it->second;
    Step s{&k, {}, {}, outs, Call{}, live, {}};
    s.call.k = &k;
    size_t na = 0, nat = 0;
    try {
      for (const Param& p : k.params) agt::is_array(p.kind) ? ++na : ++nat;
      if (ins.size() != na)
        kfail(false, k,
              "plan step takes " + std::to_string(na) + " array slots, got " +
                  std::to_string(ins.size()));
      if (attrs.size() > nat)
        kfail(false, k,
              "plan step takes " + std::to_string(nat) + " attrs, got " +
                  std::to_string(attrs.size()));
      if ((k.ret == 0) != outs.empty())
        kfail(false, k, k.ret ? "needs result slots" : "writes its inputs: outs must be empty");
      size_t j = 0, a = 0;
      for (const Param& p : k.params) {
        if (!agt::is_array(p.kind)) {
          if (a < attrs.size())
            s.call.attr[a] = to_attr(k, p, attrs[a].ptr());
          else if (p.has_default)
            s.call.attr[a] = p.def;
          else
            kfail(false, k, "missing attr '" + p.name + "'");
          ++a;
          continue;
        }
        const py::handle h = ins[j++];
        const bool seq = p.kind == PK::InSeq || p.kind == PK::InSeqOpt;
        s.none.push_back(h.is_none());
        if (h.is_none() && p.kind != PK::InOpt && p.kind != PK::InSeqOpt)
          kfail(false, k, p.name + " must not be None");
        if (h.is_none())
          s.ins.emplace_back();
        else if (seq)
          s.ins.push_back(h.cast<std::vector<int>>());
        else
          s.ins.push_back({h.cast<int>()});
      }
      s.call.nattr = static_cast<int>(a);
      for (const auto& [pos, slot] : live) {
        if (pos < 0 || pos >= s.call.nattr || slot < 0)
          kfail(false, k,
                "live (" + std::to_string(pos) + ", " + std::to_string(slot) + ") is out of range");
        const PK kind = attr_param(k, pos).kind;
        if (!(kind == PK::Float || (k.optim && (kind == PK::Int || kind == PK::Bool))))
          kfail(false, k,
                "attr '" + attr_param(k, pos).name + "' fixes shapes or modes and cannot be live");
        max_slot_ = std::max(max_slot_, slot);
      }
    } catch (const KernelError& e) {
      throw py::value_error(e.msg);
    } catch (const py::cast_error&) {
      throw py::value_error(name + ": ins must hold slot numbers, lists of them, or None");
    }
    steps_.push_back(std::move(s));
    bound_ = false;
  }

  void bind(const py::list& buffers) {
    std::vector<Arr> slots(buffers.size());
    std::vector<py::array> keep;
    for (size_t i = 0; i < buffers.size(); ++i) {
      PyObject* o = buffers[i].ptr();
      const auto* p = npy().PyArray_Check_(o) ? py::detail::array_proxy(o) : nullptr;
      if (!p || !dtype_of(p->descr, slots[i].dt) ||
          !(p->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) || p->nd > agt::kMaxDims)
        throw py::value_error("Plan.bind: buffer " + std::to_string(i) +
                              " must be a C-contiguous float32, float64 or int64 ndarray");
      to_arr(*by_name().at("sum"), "buffer", o, slots[i].dt == DT::I64, slots[i]);
      keep.push_back(py::reinterpret_borrow<py::array>(o));
    }
    std::vector<py::array> scratch;
    for (size_t si = 0; si < steps_.size(); ++si) {
      Step& s = steps_[si];
      Call& c = s.call;
      try {
        size_t total = 0;
        for (const auto& v : s.ins) total += v.size();
        s.arena.assign(total, Arr{});
        c.nin = 0, c.nout = 0, c.nscratch = 0;
        for (size_t j = 0, at = 0; j < s.ins.size(); ++j) {
          agt::Span& sp = c.in[c.nin++];
          sp = agt::Span{s.arena.data() + at, static_cast<int>(s.ins[j].size()), bool(s.none[j])};
          const Param& p = array_param(*s.k, static_cast<int>(j));
          for (int slot : s.ins[j]) {
            if (slot < 0 || size_t(slot) >= slots.size())
              kfail(false, *s.k, "slot " + std::to_string(slot) + " is not a buffer");
            s.arena[at++] = slots[slot];
            if ((slots[slot].dt == DT::I64) != (p.kind == PK::Index))
              kfail(true, *s.k, p.name + " has the wrong dtype in slot " + std::to_string(slot));
          }
        }
        check_dtypes(c);
        s.k->prep(c);
        if (s.outs.size() != size_t(c.nout))
          kfail(false, *s.k,
                "has " + std::to_string(c.nout) + " results, got " + std::to_string(s.outs.size()) +
                    " out slots");
        for (int o = 0; o < c.nout; ++o) {
          const int slot = s.outs[o];
          if (!agt::is_result(c, o)) {  // a result the call's flags leave out (linear_back's dx)
            if (slot != -1)
              kfail(false, *s.k,
                    "result " + std::to_string(o) + " is not computed: its slot must be -1");
            continue;
          }
          if (slot < 0 || size_t(slot) >= slots.size())
            kfail(false, *s.k, "slot " + std::to_string(slot) + " is not a buffer");
          const Arr& b = slots[slot];
          if (b.dt != c.out[o].dt || !agt::same_shape(b, c.out[o]) || !b.writable)
            kfail(false, *s.k,
                  "result " + std::to_string(o) + " needs a writable " +
                      (c.out[o].dt == DT::F32 ? "float32" : "float64") + " buffer of shape " +
                      agt::shape_str(c.out[o]) + ", slot " + std::to_string(slot) + " holds " +
                      agt::shape_str(b));
          c.out[o].data = b.data;
          // A result written over an argument (or another result) it is computed from would be
          // read after it is overwritten (gemm, row reductions): refuse any overlap of memory,
          // aliases made by reshaping one buffer included.
          for (const Arr& a : s.arena)
            if (overlaps(b, a))
              kfail(false, *s.k,
                    "result " + std::to_string(o) + " (slot " + std::to_string(slot) +
                        ") overlaps an argument's memory");
          for (int p = 0; p < o; ++p)
            if (overlaps(b, c.out[p]))
              kfail(false, *s.k,
                    "results " + std::to_string(p) + " and " + std::to_string(o) + " overlap");
        }
        for (int o = 0; o < c.nscratch; ++o) {
          scratch.push_back(py::reinterpret_steal<py::array>(new_array(c.scratch[o])));
          c.scratch[o].data = scratch.back().mutable_data();
        }
      } catch (const KernelError& e) {
        throw py::value_error("plan step " + std::to_string(si) + " (" + e.msg + ")");
      }
    }
    buffers_ = std::move(keep), scratch_ = std::move(scratch), bound_ = true;
  }

  // stop: run only the first `stop` steps (-1: all). A compiled step puts an optimizer update
  // at the end of a plan and runs the plan without it when the optimizer's state no longer fits
  // what was bound (the update then runs in Python).
  void run(const py::array& scalars, long stop) {
    if (!bound_) throw py::value_error("Plan.run: bind the buffers first (after the last add)");
    if (stop < -1 || stop > long(steps_.size()))
      throw py::value_error("Plan.run: stop must be -1 or 0.." + std::to_string(steps_.size()) +
                            ", got " + std::to_string(stop));
    const size_t nsteps = stop < 0 ? steps_.size() : size_t(stop);
    if (!py::isinstance<py::array_t<double>>(scalars) || scalars.ndim() != 1 ||
        !(scalars.flags() & py::array::c_style))
      throw py::value_error("Plan.run: scalars must be a 1-d C-contiguous float64 array");
    if (scalars.shape(0) <= max_slot_)
      throw py::value_error("Plan.run: live attrs read scalars[" + std::to_string(max_slot_) +
                            "], got " + std::to_string(scalars.shape(0)) + " scalars");
    const double* sc = static_cast<const double*>(scalars.data());
    size_t failed = 0;
    index_t bad = -1;
    ag_runtime::release_late_references();
    try {
      py::gil_scoped_release nogil;
      auto last = std::chrono::steady_clock::now();
      for (size_t si = 0; si < nsteps && bad < 0; ++si) {
        Call& c = steps_[si].call;
        for (const auto& [pos, slot] : steps_[si].live)
          c.attr[pos].f = sc[slot], c.attr[pos].i = static_cast<index_t>(sc[slot]);
        bad = c.k->run(c), failed = si;
        // Ctrl-C between steps, looked at once a millisecond (a clock read costs ~20 ns)
        const auto now = std::chrono::steady_clock::now();
        if (now - last > std::chrono::milliseconds(1)) ag::interruption_point(), last = now;
      }
    } catch (...) {
      keep_operands();
      throw;
    }
    keep_operands();
    if (bad >= 0)
      throw py::value_error("plan step " + std::to_string(failed) + " (" + steps_[failed].k->name +
                            "): " + data_error(steps_[failed].call, bad));
  }

  size_t size() const { return steps_.size(); }

 private:
  // A product may return while a pool worker still reads its operands (a tile stolen from a
  // preempted worker, kernels/threads.h). They are this plan's buffers and scratch: the plan
  // (which a rebind or del would drop them with) and each of them are kept alive until it is done.
  void keep_operands() {
    if (!ag::late_workers_pending()) return;
    const py::object self = py::cast(this, py::return_value_policy::reference);
    std::vector<PyObject*> objects = {self.ptr()};
    for (const py::array& b : buffers_) objects.push_back(b.ptr());
    for (const py::array& b : scratch_) objects.push_back(b.ptr());
    ag_runtime::keep_for_late_workers(objects);
  }

 public:

 private:
  static const Param& nth(const Kernel& k, int n, bool array) {
    for (const Param& p : k.params)
      if (agt::is_array(p.kind) == array && n-- == 0) return p;
    throw std::logic_error("no such parameter");
  }
  static const Param& attr_param(const Kernel& k, int n) { return nth(k, n, false); }
  static const Param& array_param(const Kernel& k, int n) { return nth(k, n, true); }

  std::deque<Step> steps_;
  std::vector<py::array> buffers_, scratch_;
  int max_slot_ = -1;
  bool bound_ = false;
};

// Adds Plan and plan_kernels() to the module.
inline void bind_plan(py::module_& m) {
  m.def(
      "plan_kernels",
      [] {
        std::vector<std::string> names;
        for (const Kernel& k : agt::kernel_table()) names.push_back(k.name);
        return names;
      },
      "Names of the kernels a Plan accepts (numpy_kernels' names and argument order).");
  py::class_<Plan>(m, "Plan", "Kernel calls recorded once and replayed in one native call.")
      .def(py::init<>())
      .def("add", &Plan::add, py::arg("kernel"), py::arg("ins"), py::arg("outs"),
           py::arg("attrs") = py::list(), py::arg("live") = std::vector<std::pair<int, int>>(),
           "Appends a step calling `kernel` (a plan_kernels() name, numpy_kernels' argument "
           "order).\n"
           "ins: per array parameter a buffer slot, a list of slots (optimizer lists) or None;\n"
           "outs: a slot per result in return order (linear_back: 2 without bias, 3 with;\n"
           "cross_entropy: loss, log_probs; none for sgd_step/adam_step, which write their ins);\n"
           "attrs: the other arguments in order, defaults filled; live: (attr position, scalar\n"
           "slot) pairs read on every run, for float attrs and any attr of an optimizer step.\n"
           "KeyError for a kernel without a native entry, ValueError naming it otherwise.")
      .def("bind", &Plan::bind, py::arg("buffers"),
           "Checks every step's contract against the buffers (float32/float64, int64 for class "
           "ids,\n"
           "C-contiguous, results writable and of the right shape) and keeps them; ValueError\n"
           "naming the step and kernel otherwise. Rebind after adding steps.")
      .def("run", &Plan::run, py::arg("scalars"), py::arg("stop") = -1,
           "Runs every step in order (scalars: float64 1-d, read by live attrs), GIL released,\n"
           "allocating nothing; KeyboardInterrupt between steps on Ctrl-C. stop: run only the\n"
           "first `stop` steps (-1: all).")
      .def("__len__", &Plan::size);
}

}  // namespace agt_front
