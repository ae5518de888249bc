// Consoles and diagnostics. EC2 has a console log (GetConsoleOutput) and an NMI for crash
// dumps (SendDiagnosticInterrupt), but no hypervisor counters: diagnostics are emulated from
// DescribeInstances and DescribeInstanceTypes, with usage counters (which would need
// CloudWatch) reported null/0.

import { GetConsoleOutputCommand, SendDiagnosticInterruptCommand } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { POWER_STATE_NAMES } from '../../compute/states.ts';
import type { InstanceDiagnostics } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { EC2_HYPERVISOR_TYPE } from './capacity.ts';
import { EC2_DRIVER_NAME } from './errors.ts';
import { type Guest, observationOf } from './guests.ts';
import { type InstanceTypeCache, instanceTypeInfo } from './instance-types.ts';
import { powerStateOf } from './power-state.ts';

/** GetConsoleOutput (base64, the most recent 64 KB). Empty → ConsoleNotAvailable. */
export async function consoleOutput(
  ec2: Ec2Context,
  instance: Instance,
  guest: Guest,
): Promise<string> {
  const out = await attempt('get_console_output', { instanceId: instance.instance_id }, () =>
    ec2.call('GetConsoleOutput', () =>
      ec2.client.send(new GetConsoleOutputCommand({ InstanceId: guest.ec2Id })),
    ),
  );
  const text = out.Output ? Buffer.from(out.Output, 'base64').toString('utf8') : '';
  if (text === '') {
    throw new DriverError(
      'ConsoleNotAvailable',
      `Guest console of ${instance.instance_id} is not available yet.`,
    );
  }
  return text;
}

/**
 * Emulated from DescribeInstances and DescribeInstanceTypes: the shape (CPUs, NICs, disks,
 * memory, uptime) is real; usage counters need CloudWatch and are reported null/0.
 */
export async function instanceDiagnostics(
  ec2: Ec2Context,
  instanceTypes: InstanceTypeCache,
  guest: Guest,
): Promise<InstanceDiagnostics> {
  const raw = guest.raw;
  const type = await instanceTypeInfo(ec2, instanceTypes, guest.instanceType);
  const cpus =
    (raw.CpuOptions?.CoreCount ?? 0) * (raw.CpuOptions?.ThreadsPerCore ?? 1) || type?.vcpus || 0;
  const launched = raw.LaunchTime?.getTime();
  const nics = raw.NetworkInterfaces ?? [];
  const disks = raw.BlockDeviceMappings ?? [];
  return {
    state: POWER_STATE_NAMES[powerStateOf(observationOf(raw))],
    driver: EC2_DRIVER_NAME,
    hypervisor: EC2_HYPERVISOR_TYPE,
    hypervisor_os: null,
    uptime:
      guest.state === 'running' && launched !== undefined
        ? Math.max(0, Math.floor((ec2.now().getTime() - launched) / 1000))
        : null,
    config_drive: false,
    num_cpus: cpus,
    num_nics: nics.length,
    num_disks: disks.length,
    cpu_details: Array.from({ length: cpus }, (_unused, id) => ({
      id,
      time: null,
      utilisation: null,
    })),
    nic_details: nics.map((nic) => ({
      mac_address: nic.MacAddress ?? '',
      rx_octets: 0,
      rx_errors: 0,
      rx_drop: 0,
      rx_packets: 0,
      rx_rate: null,
      tx_octets: 0,
      tx_errors: 0,
      tx_drop: 0,
      tx_packets: 0,
      tx_rate: null,
    })),
    disk_details: disks.map(() => ({
      read_bytes: 0,
      read_requests: 0,
      write_bytes: 0,
      write_requests: 0,
      errors_count: 0,
    })),
    memory_details: { maximum: type?.memory_mb ?? 0, used: 0 },
  };
}

/** SendDiagnosticInterrupt: an NMI, which the guest turns into a crash dump. */
export async function sendCrashDumpInterrupt(
  ec2: Ec2Context,
  instance: Instance,
  guest: Guest,
): Promise<void> {
  if (guest.state !== 'running') {
    throw new DriverError('InstanceNotRunning', `Instance ${instance.instance_id} is not running.`);
  }
  await attempt('trigger_crash_dump', { instanceId: instance.instance_id }, () =>
    ec2.call('SendDiagnosticInterrupt', () =>
      ec2.client.send(new SendDiagnosticInterruptCommand({ InstanceId: guest.ec2Id })),
    ),
  );
}
