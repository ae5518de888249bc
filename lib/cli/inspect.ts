// The read-only commands: instances, show, actions, action, faults, nodes.

import { DynamoDbNodeStore } from '../resources/dynamodb-node-store.ts';
import { type NodeDescription, describeNode } from '../resources/nodes.ts';
import { DynamoDbNodeStateStore } from '../store/node-state-store.ts';
import type { Instance } from '../compute/instance.ts';
import { POWER_STATE_NAMES } from '../compute/states.ts';
import { type Config, DEFAULT_FAKE_NODES, loadConfig } from '../config.ts';
import type { ActionRecord } from '../store/state-store.ts';
import { CliError } from './errors.ts';
import { dash, keyValues, shortTime, table } from './format.ts';
import { scanInstances } from './instance-scan.ts';
import type { CliRuntime } from './runtime.ts';
import type { Target } from './target.ts';

const power = (i: Instance) => POWER_STATE_NAMES[i.power_state] ?? String(i.power_state);

function printJson(rt: CliRuntime, value: unknown): void {
  rt.io.out(JSON.stringify(value, null, 2));
}

export async function listInstances(
  target: Target,
  rt: CliRuntime,
  o: { json: boolean; all: boolean },
): Promise<number> {
  const instances = (await scanInstances(target.doc, target.stateTable)).filter(
    (i) => o.all || !i.deleted,
  );
  if (o.json) {
    printJson(rt, instances);
    return 0;
  }
  if (instances.length === 0) {
    rt.io.out(o.all ? 'no instances' : 'no instances (--all shows deleted ones too)');
    return 0;
  }
  rt.io.out(
    table(
      ['INSTANCE ID', 'NAME', 'PROJECT', 'STATE', 'TASK', 'POWER', 'NODE', 'FLAVOR', 'CREATED'],
      instances.map((i) => [
        i.instance_id,
        dash(i.display_name),
        i.project_id,
        i.vm_state,
        dash(i.task_state),
        power(i),
        dash(i.node),
        i.flavor?.name ?? '-',
        shortTime(i.created_at),
      ]),
    ),
  );
  return 0;
}

async function instanceOrFail(target: Target, id: string): Promise<Instance> {
  const instance = await target.store.getInstance(id);
  if (!instance)
    throw new CliError(`instance ${id} not found`, 'list them with: stratus instances');
  return instance;
}

export async function showInstance(
  target: Target,
  rt: CliRuntime,
  id: string,
  json: boolean,
): Promise<number> {
  const i = await instanceOrFail(target, id);
  if (json) {
    printJson(rt, i);
    return 0;
  }
  const ips = (i.ports ?? []).flatMap((p) =>
    p.fixed_ips.map((ip) => `${ip.address} (${p.network_id})`),
  );
  const f = i.flavor;
  rt.io.out(
    keyValues([
      ['instance_id', i.instance_id],
      ['display_name', dash(i.display_name)],
      ['project / user', `${i.project_id} / ${i.user_id}`],
      ['vm_state', i.vm_state],
      ['task_state', dash(i.task_state)],
      ['power_state', power(i)],
      [
        'flavor',
        f
          ? `${f.name} (${f.vcpus} vCPU, ${f.memory_mb} MB, ${f.root_gb + f.ephemeral_gb} GB)`
          : '-',
      ],
      ['image_ref', dash(i.image_ref)],
      ['host / node', `${dash(i.host)} / ${dash(i.node)}`],
      ['availability_zone', dash(i.availability_zone)],
      ['fixed_ips', ips.length > 0 ? ips.join(', ') : '-'],
      [
        'locked',
        i.locked
          ? `yes (by ${dash(i.locked_by)}${i.locked_reason ? `: ${i.locked_reason}` : ''})`
          : 'no',
      ],
      ['metadata', Object.keys(i.metadata ?? {}).length > 0 ? JSON.stringify(i.metadata) : '-'],
      ['created_at', shortTime(i.created_at)],
      ['launched_at', shortTime(i.launched_at)],
      ['updated_at', shortTime(i.updated_at)],
      ['terminated_at', shortTime(i.terminated_at)],
      ['version', String(i.version)],
    ]),
  );
  return 0;
}

function actionMessage(a: ActionRecord): string {
  if (a.outcome?.error) return `${a.outcome.error.code} ${a.outcome.error.message}`;
  const retry = a.progress?.last_error;
  return typeof retry === 'string' ? `retrying: ${retry}` : '';
}

export async function listActions(
  target: Target,
  rt: CliRuntime,
  id: string,
  json: boolean,
): Promise<number> {
  const actions = await target.store.listActions(id);
  if (json) {
    printJson(rt, actions);
    return 0;
  }
  if (actions.length === 0) {
    await instanceOrFail(target, id);
    rt.io.out('no actions');
    return 0;
  }
  rt.io.out(
    table(
      ['COMMAND ID', 'OPERATION', 'STATUS', 'STARTED', 'FINISHED', 'MESSAGE'],
      actions.map((a) => [
        a.command_id,
        a.operation,
        a.status,
        shortTime(a.start_time),
        shortTime(a.finish_time),
        actionMessage(a),
      ]),
    ),
  );
  return 0;
}

export async function showAction(
  target: Target,
  rt: CliRuntime,
  commandId: string,
  json: boolean,
): Promise<number> {
  const a = await target.store.findActionByCommand(commandId);
  if (!a) {
    throw new CliError(
      `no action for command ${commandId}`,
      'it has not been picked up yet, or the id is wrong (stratus actions <instance-id> lists them)',
    );
  }
  if (json) {
    printJson(rt, a);
    return 0;
  }
  const progress = Object.entries(a.progress ?? {})
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}=${String(v)}`);
  const unpublished = await target.store.pendingNotifications(a.subject, a.command_id);
  rt.io.out(
    keyValues([
      ['command_id', a.command_id],
      ['operation', a.operation],
      ['status', a.status],
      ['instance_id', dash(a.instance_id)],
      ['filed under', `${a.subject.kind} ${a.subject.id}`],
      ['project / user', `${dash(a.project_id)} / ${dash(a.user_id)}`],
      ['request_id', a.request_id],
      ['started', shortTime(a.start_time)],
      ['finished', shortTime(a.finish_time)],
      [
        'error',
        a.outcome?.error
          ? `${a.outcome.error.code} ${a.outcome.error.message} (${dash(a.error_code)})`
          : '-',
      ],
      ['reply_to', a.reply_to ? `${a.reply_to} (${a.reply_sent ? 'sent' : 'not sent yet'})` : '-'],
      ['progress', progress.length > 0 ? progress.join(', ') : '-'],
      ['unpublished', String(unpublished.length)],
    ]),
  );
  if (a.events.length > 0) {
    rt.io.out('');
    rt.io.out(
      table(
        ['EVENT', 'RESULT', 'STARTED', 'FINISHED'],
        a.events.map((e) => [
          e.event,
          dash(e.result),
          shortTime(e.start_time),
          shortTime(e.finish_time),
        ]),
      ),
    );
  }
  if (a.outcome?.result !== undefined) {
    rt.io.out('');
    rt.io.out(JSON.stringify(a.outcome.result, null, 2));
  }
  return 0;
}

export async function listFaults(
  target: Target,
  rt: CliRuntime,
  id: string,
  json: boolean,
): Promise<number> {
  const faults = await target.store.listFaults(id);
  if (json) {
    printJson(rt, faults);
    return 0;
  }
  if (faults.length === 0) {
    await instanceOrFail(target, id);
    rt.io.out('no faults');
    return 0;
  }
  rt.io.out(
    table(
      ['CREATED', 'CODE', 'COMMAND ID', 'HOST', 'MESSAGE'],
      faults.map((f) => [
        shortTime(f.created_at),
        String(f.code),
        f.command_id,
        dash(f.host),
        f.message,
      ]),
    ),
  );
  return 0;
}

function configuredNodes(target: Target, rt: CliRuntime): Config['fake_nodes'] {
  if (target.endpoints.fake_nodes) return target.endpoints.fake_nodes as Config['fake_nodes'];
  try {
    return loadConfig(rt.env).fake_nodes;
  } catch {
    return [...DEFAULT_FAKE_NODES];
  }
}

export async function listNodes(target: Target, rt: CliRuntime, json: boolean): Promise<number> {
  // The resource tracker's view (Nova's compute nodes): inventory, usage, limits and claims.
  const names = configuredNodes(target, rt).map((n) => n.node);
  const nodeStore = new DynamoDbNodeStore(target.doc, target.stateTable);
  const flagsStore = new DynamoDbNodeStateStore(target.doc, target.stateTable);
  const [inventories, states] = await Promise.all([
    nodeStore.getNodes(names),
    flagsStore.getMany(names),
  ]);
  const flags = new Map(states.map((f) => [f.node, f]));
  const nodes = await Promise.all(
    names.map(async (name) => {
      const node = inventories.get(name);
      if (!node) return null; // not yet discovered: the first build or resource audit records it
      const f = flags.get(name);
      return describeNode(
        node,
        { enabled: f?.enabled ?? true, maintenance: f?.maintenance ?? false },
        await nodeStore.listClaims(name),
      );
    }),
  );
  const known = nodes.filter((n): n is NodeDescription => n !== null);
  if (json) {
    printJson(rt, known);
    return 0;
  }
  if (known.length === 0) {
    rt.io.out('No compute node recorded yet: the first build or resource audit discovers them.');
    return 0;
  }
  rt.io.out(
    table(
      ['NODE', 'ZONE', 'STATE', 'CLAIMS', 'VCPUS', 'MEMORY MB', 'DISK GB'],
      known.map((n) => [
        n.node,
        n.availability_zone,
        n.maintenance ? 'maintenance' : n.enabled ? 'enabled' : 'disabled',
        String(n.claims.length),
        `${n.usage.vcpus}/${n.limits.vcpus}`,
        `${n.usage.memory_mb}/${n.limits.memory_mb}`,
        `${n.usage.local_gb}/${n.limits.local_gb}`,
      ]),
    ),
  );
  return 0;
}
