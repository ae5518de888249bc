// EC2 state → Nova power_state and lifecycle transition, row by row as reference §2 proposes.
import { describe, expect, it } from 'vitest';
import { LifecycleTransition, PowerState } from '../../../lib/compute/states.ts';
import {
  type Ec2Observation,
  ec2StateName,
  lifecycleTransitionOf,
  powerStateOf,
} from '../../../lib/virt/ec2/power-state.ts';
import { Ec2Intent } from '../../../lib/virt/ec2/tags.ts';

const HIBERNATE = 'Client.UserInitiatedHibernate';

describe('powerStateOf and lifecycleTransitionOf', () => {
  it.each<[string, Ec2Observation, PowerState, LifecycleTransition | null]>([
    ['pending', { state: 'pending' }, PowerState.NOSTATE, null],
    ['running', { state: 'running' }, PowerState.RUNNING, LifecycleTransition.STARTED],
    [
      'running after a resume',
      { state: 'running', intent: Ec2Intent.RESUME },
      PowerState.RUNNING,
      LifecycleTransition.RESUMED,
    ],
    ['stopping', { state: 'stopping' }, PowerState.NOSTATE, null],
    [
      'stopped by the user',
      { state: 'stopped', stateReason: 'Client.UserInitiatedShutdown' },
      PowerState.SHUTDOWN,
      LifecycleTransition.STOPPED,
    ],
    [
      'stopped by the guest',
      { state: 'stopped', stateReason: 'Client.InstanceInitiatedShutdown' },
      PowerState.SHUTDOWN,
      LifecycleTransition.STOPPED,
    ],
    [
      'hibernated',
      { state: 'stopped', stateReason: HIBERNATE },
      PowerState.SUSPENDED,
      LifecycleTransition.SUSPENDED,
    ],
    ['shutting-down', { state: 'shutting-down' }, PowerState.NOSTATE, null],
    [
      'terminated by the driver',
      { state: 'terminated', intent: Ec2Intent.TERMINATE },
      PowerState.NOSTATE,
      LifecycleTransition.STOPPED,
    ],
    [
      'terminated out of band (capacity)',
      { state: 'terminated', stateReason: 'Server.InsufficientInstanceCapacity' },
      PowerState.CRASHED,
      LifecycleTransition.STOPPED,
    ],
  ])('%s', (_label, observation, power, transition) => {
    expect(powerStateOf(observation)).toBe(power);
    expect(lifecycleTransitionOf(observation)).toBe(transition);
  });
});

describe('ec2StateName', () => {
  it('reads the name, or the low byte of the code', () => {
    expect(ec2StateName({ Name: 'stopped', Code: 80 })).toBe('stopped');
    expect(ec2StateName({ Code: 16 + 256 * 3 })).toBe('running');
    expect(ec2StateName({ Code: 48 })).toBe('terminated');
    expect(() => ec2StateName({ Code: 99 })).toThrow(/unknown EC2 instance state/);
  });
});
