// Network operations (nova-compute.md §1.6, §1.7): attach_interface, detach_interface,
// add_fixed_ip_to_instance, remove_fixed_ip_from_instance and inject_network_info.
//
// Stratus has no Neutron: the driver allocates a hot-plugged port (as it does at spawn) and the
// instance record's `ports` is both the network info cache and the port list. So:
//   attach    capability supports_attach_interface (checked by compute as in Nova: failed 501
//             with a fault), driver.attach_interface, the port recorded in instance.ports; no
//             legacy notification (Nova sends versioned ones only)
//   detach    the port must be the instance's (PortNotFound 404), driver.detach_interface,
//             the port removed
//   fixed IPs `create_ip.start`, the address added to (removed from) the port on that network,
//             inject_network_info, the record saved, `create_ip.end` (`delete_ip.*`) with the
//             instance's fixed_ips
// No task_state is set for any of them. Port lists are not part of Nova's Instance object, so
// attach/detach emit no compute.instance.update; the fixed-IP operations save the instance
// (Nova bumps updated_at), which does.

import { createHash } from 'node:crypto';
import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError } from '../../errors.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import { novaErrorCode } from '../device-names.ts';
import type { OperationHandler } from '../executor.ts';
import type { FixedIp, Instance, InstancePort } from '../instance.ts';
import type { CommandRuntime } from '../runtime.ts';
import { VmState } from '../states.ts';
import { driverContext, isRetryable } from './common.ts';
import {
  type ApiRules,
  checkInstance,
  finishFailed,
  finishSucceeded,
  notifyStartOnce,
  running,
  runningInstance,
  startOnInstance,
} from './no-task-operation.ts';

/** attach_interface / detach_interface: check_instance_state(vm_state=[…], task_state=[None]). */
export const INTERFACE_VM_STATES: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.PAUSED,
  VmState.STOPPED,
];
const INTERFACE_RULES: ApiRules = { vmStates: INTERFACE_VM_STATES };
/** add/remove fixed IP and inject_network_info: check_instance_lock only (and a host to cast to). */
const NETWORK_INFO_RULES: ApiRules = { vmStates: 'any', taskStates: 'any' };

export class PortNotFoundError extends StratusError {
  constructor(portId: string) {
    super(
      novaErrorCode('PortNotFound', ErrorCode.InstanceNotFound),
      `Port ${portId} is not attached`,
    );
  }
}

export class PortInUseError extends StratusError {
  constructor(portId: string) {
    super(
      novaErrorCode('PortInUse', ErrorCode.InstanceInvalidState),
      `Port ${portId} is still in use.`,
    );
  }
}

export class NetworkNotFoundForInstanceError extends StratusError {
  constructor(instanceId: string) {
    super(
      novaErrorCode('NetworkNotFoundForInstance', ErrorCode.InstanceNotFound),
      `Network could not be found for instance ${instanceId}.`,
    );
  }
}

export class FixedIpNotFoundForInstanceError extends StratusError {
  constructor(instanceId: string, address: string) {
    super(
      novaErrorCode('FixedIpNotFoundForSpecificInstance', ErrorCode.InstanceNotFound),
      `Instance ${instanceId} doesn't have fixed IP '${address}'.`,
    );
  }
}

const hasPort = (instance: Instance, portId: string) =>
  instance.ports.some((p) => p.port_id === portId);

// ── attach_interface ─────────────────────────────────────────────────────────────────────────

function checkPortFree(instance: Instance, portId: string | undefined): void {
  if (portId !== undefined && hasPort(instance, portId)) throw new PortInUseError(portId);
}

export const attachInterface: OperationHandler<void> = {
  operation: 'attach_interface',

  async prepare(rt, admin) {
    const instance = await checkInstance(rt, admin, INTERFACE_RULES);
    checkPortFree(instance, (rt.command.args as ArgsOf<'attach_interface'>).port_id);
  },

  async start(rt) {
    const { port_id } = rt.command.args as ArgsOf<'attach_interface'>;
    await startOnInstance(rt, INTERFACE_RULES, {
      changes: (current) => {
        checkPortFree(current, port_id);
        return {};
      },
    });
  },

  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    const args = rt.command.args as ArgsOf<'attach_interface'>;
    const event = 'compute_attach_interface';
    let port: InstancePort;
    try {
      // Checked by compute, as Nova's _attach_interface does: a 501 with a fault.
      const { driver } = rt.deps;
      if (!driver.capabilities.supports_attach_interface) {
        throw new NotSupportedError(driver.name, 'attach_interface');
      }
      port = await rt.deps.driver.attachInterface(driverContext(rt), instance, {
        ...(args.port_id === undefined ? {} : { port_id: args.port_id }),
        ...(args.network_id === undefined ? {} : { network_id: args.network_id }),
        ...(args.fixed_ip === undefined ? {} : { fixed_ip: args.fixed_ip }),
        imageMeta: instance.image_meta,
      });
    } catch (e) {
      if (isRetryable(e)) throw e;
      await finishFailed(rt, instance, e, { event });
      return;
    }
    await finishSucceeded(rt, instance, {
      event,
      changes: (current) => ({
        ports: hasPort(current, port.port_id) ? current.ports : [...current.ports, port],
      }),
      result: port,
    });
  },
};

// ── detach_interface ─────────────────────────────────────────────────────────────────────────

function attachedPort(instance: Instance, portId: string): void {
  if (!hasPort(instance, portId)) throw new PortNotFoundError(portId);
}

export const detachInterface: OperationHandler<void> = {
  operation: 'detach_interface',

  async prepare(rt, admin) {
    const instance = await checkInstance(rt, admin, INTERFACE_RULES);
    attachedPort(instance, (rt.command.args as ArgsOf<'detach_interface'>).port_id);
  },

  async start(rt) {
    const { port_id } = rt.command.args as ArgsOf<'detach_interface'>;
    await startOnInstance(rt, INTERFACE_RULES, {
      changes: (current) => {
        attachedPort(current, port_id);
        return {};
      },
    });
  },

  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    const { port_id } = rt.command.args as ArgsOf<'detach_interface'>;
    const event = 'compute_detach_interface';
    if (!hasPort(instance, port_id)) {
      // A concurrent detach of the same port won (Nova's interface lock would serialise them).
      await finishFailed(rt, instance, new PortNotFoundError(port_id), { event });
      return;
    }
    try {
      await rt.deps.driver.detachInterface(driverContext(rt), instance, port_id);
    } catch (e) {
      if (isRetryable(e)) throw e;
      await finishFailed(rt, instance, e, { event });
      return;
    }
    await finishSucceeded(rt, instance, {
      event,
      changes: (current) => ({ ports: current.ports.filter((p) => p.port_id !== port_id) }),
    });
  },
};

// ── add_fixed_ip_to_instance / remove_fixed_ip_from_instance ─────────────────────────────────

/**
 * A new address for `port`: derived from the command id, so a redelivered command picks the
 * same one, and never an address the instance already has. 10.x.y.z with z in 2..254, like the
 * fake's spawn-time addresses (there is no IPAM to ask).
 */
export function allocateFixedIp(instance: Instance, port: InstancePort, commandId: string): string {
  const used = new Set(instance.ports.flatMap((p) => p.fixed_ips.map((ip) => ip.address)));
  for (let n = 0; ; n++) {
    const bytes = createHash('sha256').update(`${commandId}:${port.port_id}:${n}`).digest();
    const address = `10.${bytes[0]!}.${bytes[1]!}.${2 + (bytes[2]! % 253)}`;
    if (!used.has(address)) return address;
  }
}

function withAddedIp(ports: readonly InstancePort[], portId: string, address: string) {
  return ports.map((p) => {
    if (p.port_id !== portId || p.fixed_ips.some((ip) => ip.address === address)) return p;
    const ip: FixedIp = {
      address,
      version: 4,
      label: p.fixed_ips[0]?.label ?? p.network_id,
      vif_mac: p.mac,
      type: 'fixed',
      floating_ips: [],
      meta: {},
    };
    return { ...p, fixed_ips: [...p.fixed_ips, ip] };
  });
}

function withoutIp(ports: readonly InstancePort[], address: string) {
  return ports.map((p) => ({
    ...p,
    fixed_ips: p.fixed_ips.filter((ip) => ip.address !== address),
  }));
}

/**
 * Nova's manager for both: `<notify>.start`, the network change, inject_network_info, save,
 * `<notify>.end` with the network info. `change` answers the new port list (or throws Nova's
 * not-found error) for the record it is given; it runs again on the final write's record.
 */
async function changeFixedIps(
  rt: CommandRuntime,
  notify: 'create_ip' | 'delete_ip',
  change: (instance: Instance) => InstancePort[],
): Promise<void> {
  const current = await running(rt);
  if (!current) return;
  const { action, instance } = current;
  await notifyStartOnce(rt, action, rt.notify(instance, `${notify}.start`));
  let ports: InstancePort[];
  try {
    ports = change(instance);
    await rt.deps.driver.injectNetworkInfo(driverContext(rt), { ...instance, ports }, ports);
  } catch (e) {
    if (isRetryable(e)) throw e;
    await finishFailed(rt, instance, e);
    return;
  }
  await finishSucceeded(rt, instance, {
    changes: (latest) => ({ ports: latest.version === instance.version ? ports : change(latest) }),
    notifications: (old, next) => [
      ...rt.updates(old, next),
      rt.notify(next, `${notify}.end`, { includeFixedIps: true }),
    ],
  });
}

export const addFixedIpToInstance: OperationHandler<void> = {
  operation: 'add_fixed_ip_to_instance',
  async prepare(rt, admin) {
    await checkInstance(rt, admin, NETWORK_INFO_RULES);
  },
  async start(rt) {
    await startOnInstance(rt, NETWORK_INFO_RULES);
  },
  async perform(rt) {
    const { network_id } = rt.command.args as ArgsOf<'add_fixed_ip_to_instance'>;
    await changeFixedIps(rt, 'create_ip', (instance) => {
      const port = instance.ports.find((p) => p.network_id === network_id);
      if (!port) throw new NetworkNotFoundForInstanceError(instance.instance_id);
      const address = allocateFixedIp(instance, port, rt.command.command_id);
      return withAddedIp(instance.ports, port.port_id, address);
    });
  },
};

export const removeFixedIpFromInstance: OperationHandler<void> = {
  operation: 'remove_fixed_ip_from_instance',
  async prepare(rt, admin) {
    await checkInstance(rt, admin, NETWORK_INFO_RULES);
  },
  async start(rt) {
    await startOnInstance(rt, NETWORK_INFO_RULES);
  },
  async perform(rt) {
    const { address } = rt.command.args as ArgsOf<'remove_fixed_ip_from_instance'>;
    await changeFixedIps(rt, 'delete_ip', (instance) => {
      if (!instance.ports.some((p) => p.fixed_ips.some((ip) => ip.address === address))) {
        throw new FixedIpNotFoundForInstanceError(instance.instance_id, address);
      }
      return withoutIp(instance.ports, address);
    });
  },
};

// ── inject_network_info ──────────────────────────────────────────────────────────────────────

export const injectNetworkInfo: OperationHandler<void> = {
  operation: 'inject_network_info',
  async prepare(rt, admin) {
    await checkInstance(rt, admin, NETWORK_INFO_RULES);
  },
  async start(rt) {
    await startOnInstance(rt, NETWORK_INFO_RULES);
  },
  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    try {
      await rt.deps.driver.injectNetworkInfo(driverContext(rt), instance, instance.ports);
    } catch (e) {
      if (isRetryable(e)) throw e;
      await finishFailed(rt, instance, e);
      return;
    }
    await finishSucceeded(rt, instance, {});
  },
};
