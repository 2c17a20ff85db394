"""How an idle instance's record follows the hypervisor: libvirt's domain state as a power
state, the vm_state an idle instance settles to, and a failure as the fault a server shows."""
from __future__ import annotations


from appliance.compute.driver import DomainState
from appliance.compute.records import Fault, PowerState, VmState, now
from appliance.errors import MonostackError

POWER = {DomainState.RUNNING: PowerState.RUNNING, DomainState.PAUSED: PowerState.PAUSED,
         DomainState.SHUTOFF: PowerState.SHUTDOWN, DomainState.SUSPENDED: PowerState.SUSPENDED,
         DomainState.CRASHED: PowerState.CRASHED, DomainState.NOSTATE: PowerState.NOSTATE}
#: the vm_state an idle instance settles to for a power state
SETTLE = {PowerState.RUNNING: VmState.ACTIVE, PowerState.PAUSED: VmState.PAUSED,
          PowerState.SHUTDOWN: VmState.STOPPED, PowerState.SUSPENDED: VmState.SUSPENDED,
          PowerState.CRASHED: VmState.STOPPED}
#: the vm_states that follow the power state (an ERROR or a build does not)
SETTLEABLE = {VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED}


def fault_of(exc: BaseException) -> Fault:
    """A failure as the `fault` a server shows (Nova's code, message, details, created)."""
    code = exc.status if isinstance(exc, MonostackError) else 500
    message = exc.message if isinstance(exc, MonostackError) else f"{type(exc).__name__}: {exc}"
    return Fault(code=code, message=message[:255], details=message, created=now())
