// The EC2 driver's IAM (cdk/constructs/ec2-access.ts): each function that runs the driver may
// make exactly the EC2 calls the driver makes, on this deployment's resources only (the
// stratus:deployment tag as a condition wherever EC2 supports one); driver=fake grants no EC2
// action at all.

import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type CfnElement, Validations } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { StratusStack } from '../../cdk/stack.ts';
import {
  EC2_MUTABLE_TAG_KEYS,
  EC2_REMOVABLE_TAG_KEYS,
  EC2_TAGGED_CREATES,
} from '../../cdk/constructs/ec2-access.ts';
import { resourcesOfType, synth, testApp } from './support.ts';

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

type Policies = { role: string; statements: Statement[] }[];

function policies(templates: Template[]): Policies {
  return resourcesOfType(templates, 'AWS::IAM::Policy').map(([, policy]) => ({
    role: JSON.stringify(policy.Properties?.Roles),
    statements: (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement,
  }));
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement): unknown[] =>
  Array.isArray(s.Resource) ? (s.Resource as unknown[]) : [s.Resource];
const ec2Statements = (p: Policies) =>
  p.flatMap((x) => x.statements).filter((s) => actionsOf(s).some((a) => a.startsWith('ec2:')));
/** `instance`, `image`, … from a formatArn token (or `*`). */
function resourceType(resource: unknown): string {
  if (resource === '*') return '*';
  const text = JSON.stringify(resource);
  const match = /:([a-z-]+)\/\*"/.exec(text);
  if (!match) throw new Error(`not an EC2 ARN: ${text}`);
  return match[1]!;
}

/** The EC2 API calls the driver's modules (lib/virt/ec2/*.ts) send (`new <Name>Command(`). */
function driverCalls(): string[] {
  const dir = new URL('../../lib/virt/ec2/', import.meta.url);
  const source = readdirSync(dir)
    // quotas.ts calls Service Quotas, not EC2 (its grant is checked below).
    .filter((f) => f.endsWith('.ts') && f !== 'quotas.ts')
    .map((f) => readFileSync(new URL(f, dir), 'utf8'))
    .join('\n');
  return [...new Set([...source.matchAll(/new (\w+)Command\(/g)].map((m) => `ec2:${m[1]}`))];
}

const ec2 = synth({}, { driver: 'ec2', prefix: 'prod' });
const ec2Policies = policies(ec2.all);
const OWN = { StringEquals: { 'aws:ResourceTag/stratus:deployment': 'prod' } };
const REQUESTED = { StringEquals: { 'aws:RequestTag/stratus:deployment': 'prod' } };

function bySid(sid: string): Statement {
  const found = ec2Statements(ec2Policies).find((s) => s.Sid === sid);
  expect(found, sid).toBeDefined();
  return found!;
}

describe('EC2 permissions with driver=ec2', () => {
  const functionRoles = [
    ...ec2.stack.pipelines.map((p) => p.fn),
    ec2.stack.lifecycle.fn,
    ec2.stack.periodicTasks.fn,
  ];

  it('grants every function that runs operations the EC2 driver, lifecycle-events included', () => {
    // Operations walk on from lifecycle events and the sweeper, so these make the same calls.
    const withDriver = ec2Policies.filter((p) =>
      p.statements.some((s) => s.Sid === 'Ec2OwnInstances'),
    );
    expect(withDriver.length).toBeGreaterThanOrEqual(functionRoles.length);
    const role = ec2.stack.lifecycle.fn.executionRole;
    const roleId = ec2.stack.resolve(
      ec2.stack.getLogicalId(role.node.defaultChild as CfnElement),
    ) as string;
    const lifecycle = ec2Policies.find((p) => p.role.includes(`"${roleId}"`));
    expect(lifecycle).toBeDefined();
    const lifecycleActions = lifecycle!.statements.flatMap(actionsOf);
    expect(lifecycleActions).toEqual(
      expect.arrayContaining([
        'ec2:DescribeInstances',
        'ec2:StartInstances',
        'ec2:StopInstances',
        'ec2:DeleteTags',
      ]),
    );
  });

  it('grants exactly the calls the driver makes, never a wildcard action', () => {
    const granted = new Set(ec2Statements(ec2Policies).flatMap(actionsOf));
    expect([...granted].filter((a) => a.includes('*'))).toEqual([]);
    // DescribeHosts only with ec2.dedicated_hosts (the driver does not call it otherwise).
    const calls = driverCalls().filter((c) => c !== 'ec2:DescribeHosts');
    expect([...granted].sort()).toEqual(calls.sort());
  });

  it('allows Describe* on * only: EC2 has no resource-level permissions for it', () => {
    const describe = bySid('Ec2Describe');
    expect(describe.Resource).toBe('*');
    expect(actionsOf(describe).every((a) => a.startsWith('ec2:Describe'))).toBe(true);
    expect(actionsOf(describe)).not.toContain('ec2:DescribeHosts'); // no Dedicated Hosts
    for (const s of ec2Statements(ec2Policies)) {
      if (resourcesOf(s).includes('*')) expect(s.Sid).toBe('Ec2Describe');
    }
  });

  it('lets RunInstances create only resources tagged with the deployment in the request', () => {
    const launch = bySid('Ec2LaunchTagged');
    expect(actionsOf(launch)).toEqual(['ec2:RunInstances']);
    expect(resourcesOf(launch).map(resourceType).sort()).toEqual([
      'instance',
      'network-interface',
      'volume',
    ]);
    expect(launch.Condition).toEqual(REQUESTED);
    // What a launch reads but does not own: no instance, volume or interface here.
    expect(resourcesOf(bySid('Ec2LaunchFrom')).map(resourceType).sort()).toEqual([
      'image',
      'key-pair',
      'security-group',
      'snapshot',
      'subnet',
    ]);
  });

  it('allows CreateTags only as part of a tagged create, or for the driver’s own keys', () => {
    const onCreate = bySid('Ec2TagOnCreate');
    expect(onCreate.Condition).toEqual({
      StringEquals: {
        'ec2:CreateAction': EC2_TAGGED_CREATES,
        'aws:RequestTag/stratus:deployment': 'prod',
      },
    });
    expect(EC2_TAGGED_CREATES.sort()).toEqual(
      ['CreateImage', 'CreateNetworkInterface', 'RunInstances'].sort(),
    );
    const retag = bySid('Ec2RetagOwnInstances');
    expect(resourcesOf(retag).map(resourceType)).toEqual(['instance']);
    expect(retag.Condition).toEqual({
      ...OWN,
      'ForAllValues:StringEquals': { 'aws:TagKeys': EC2_MUTABLE_TAG_KEYS },
    });
    // Identity tags can never be rewritten: no deployment or instance id among the keys.
    expect(EC2_MUTABLE_TAG_KEYS).not.toContain('stratus:deployment');
    expect(EC2_MUTABLE_TAG_KEYS).not.toContain('stratus:instance-id');
    expect(bySid('Ec2UntagOwnInstances').Condition).toEqual({
      ...OWN,
      'ForAllValues:StringEquals': { 'aws:TagKeys': EC2_REMOVABLE_TAG_KEYS },
    });
    for (const s of ec2Statements(ec2Policies)) {
      if (actionsOf(s).includes('ec2:CreateTags') || actionsOf(s).includes('ec2:DeleteTags')) {
        expect(s.Condition, s.Sid).toBeDefined();
      }
    }
  });

  it('scopes every call on an existing instance or interface to the deployment’s tag', () => {
    const own = bySid('Ec2OwnInstances');
    expect(resourcesOf(own).map(resourceType)).toEqual(['instance']);
    expect(own.Condition).toEqual(OWN);
    expect(actionsOf(own)).toEqual(
      expect.arrayContaining([
        'ec2:StartInstances',
        'ec2:StopInstances',
        'ec2:RebootInstances',
        'ec2:TerminateInstances',
        'ec2:ModifyInstanceAttribute',
      ]),
    );
    expect(bySid('Ec2OwnInterfaces').Condition).toEqual(OWN);
    expect(bySid('Ec2CreateTaggedInterfaces').Condition).toEqual(REQUESTED);
    expect(bySid('Ec2CreateTaggedImages').Condition).toEqual(REQUESTED);
    // An instance or interface is reachable only through a tag condition.
    for (const s of ec2Statements(ec2Policies)) {
      const types = resourcesOf(s).map(resourceType);
      if (types.includes('instance') || types.includes('network-interface')) {
        const keys = Object.values(s.Condition ?? {}).flatMap((c) => Object.keys(c));
        expect(
          keys.some((k) => k === 'aws:ResourceTag/stratus:deployment') ||
            keys.some((k) => k === 'aws:RequestTag/stratus:deployment'),
          s.Sid,
        ).toBe(true);
      }
    }
  });

  it('passes the ec2 settings to every function as STRATUS_EC2', () => {
    const functions = resourcesOfType(ec2.all, 'AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThan(0);
    for (const [, fn] of functions) {
      const env = (fn.Properties?.Environment as { Variables: Record<string, string> }).Variables;
      expect(env.STRATUS_DRIVER).toBe('ec2');
      expect(JSON.parse(env.STRATUS_EC2!)).toMatchObject({ dedicated_hosts: false });
    }
  });

  it('adds DescribeHosts and Dedicated Hosts as launch targets when hosts are used', () => {
    const hosts = synth(
      {},
      { driver: 'ec2', prefix: 'prod', ec2: JSON.stringify({ dedicated_hosts: true }) },
    );
    const statements = ec2Statements(policies(hosts.all));
    const describe = statements.find((s) => s.Sid === 'Ec2Describe')!;
    expect(actionsOf(describe)).toContain('ec2:DescribeHosts');
    const from = statements.find((s) => s.Sid === 'Ec2LaunchFrom')!;
    expect(resourcesOf(from).map(resourceType)).toContain('dedicated-host');
  });
});

describe('Service Quotas for pools sized by the vCPU quota', () => {
  const quotaStatements = (p: Policies) =>
    p
      .flatMap((x) => x.statements)
      .filter((s) => actionsOf(s).includes('servicequotas:GetServiceQuota'));

  it('lets the functions that size nodes read exactly that quota', () => {
    const quota = synth(
      {},
      {
        driver: 'ec2',
        prefix: 'prod',
        ec2: JSON.stringify({
          pools: [{ node: 'ec2:us-east-1a', availability_zone: 'us-east-1a', vcpus: 'quota' }],
        }),
      },
    );
    const statements = quotaStatements(policies(quota.all));
    expect(statements.length).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(actionsOf(statement)).toEqual(['servicequotas:GetServiceQuota']);
      expect(JSON.stringify(statement.Resource)).toContain(':ec2/L-1216C47A');
    }
  });

  it('grants none when every pool has a number', () => {
    expect(quotaStatements(ec2Policies)).toEqual([]);
  });
});

describe('cdk-nag with the EC2 driver on Dedicated Hosts', () => {
  it('acknowledges each wildcard EC2 resource individually, with its reason', () => {
    const app = testApp({ driver: 'ec2', ec2: JSON.stringify({ dedicated_hosts: true }) });
    new StratusStack(app, 'Stratus');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).not.toThrow();
  });
});

describe('EC2 permissions with driver=fake', () => {
  it('grants no EC2 action to any function and passes no STRATUS_EC2', () => {
    const fake = synth({}, { prefix: 'prod' });
    expect(ec2Statements(policies(fake.all))).toEqual([]);
    for (const [, fn] of resourcesOfType(fake.all, 'AWS::Lambda::Function')) {
      const env = (fn.Properties?.Environment as { Variables: Record<string, string> }).Variables;
      expect(env).not.toHaveProperty('STRATUS_EC2');
    }
  });
});
