"""What every implementation of bench/peers_*.py hands the worker: a
:class:`Runner` (one training step, the conversion of its losses to floats
after the timer, and a barrier for libraries that run asynchronously), and
the data of a workload."""
import cpu_workloads as wl


class Runner:
    """step(): one training step (an epoch, for the epoch workloads),
    returning its loss in whatever form is cheapest; to_floats(list of
    those): Python floats, called after the timer has stopped; sync(last
    result): wait until all work queued so far is done (JAX dispatches
    asynchronously), called inside the timer. `keep`: objects to keep alive
    (the model)."""

    def __init__(self, step, to_floats=None, sync=None, keep=None, notes=None):
        self.step = step
        self.to_floats = to_floats or self.identity_floats
        self.sync = sync or (lambda last: None)
        self.keep = keep
        self.notes = notes or {}

    @staticmethod
    def identity_floats(results):
        return [float(x) for x in results]

    @staticmethod
    def pairs_to_floats(results):
        """(d loss, g loss) per GAN step -> [d0, g0, d1, g1, ...]."""
        return [float(v) for pair in results for v in pair]


def data_for(workload):
    """The float32 data of a workload: the fixed batch of a step workload,
    or the 10240 rows of an epoch workload."""
    fam = wl.family(workload)
    if fam == "sparse":
        return wl.sparse_data(workload)
    if fam == "vae":
        return wl.vae_data(wl.VAE[workload])
    if fam == "gan":
        return wl.gan_data(wl.GAN[workload])
    return wl.epoch_data()
