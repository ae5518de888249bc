import { describe, expect, it } from 'vitest';
import { App } from 'aws-cdk-lib';
import { loadConfig } from '../../lib/config.ts';
import {
  LAMBDA_ENVIRONMENT_LIMIT_BYTES,
  assertEnvironmentFits,
  functionEnvironment,
  readContextOptions,
  resolveDeploymentOptions,
} from '../../cdk/options.ts';
import { StratusStack } from '../../cdk/stack.ts';
import { testApp } from './support.ts';

const fromContext = (context: Record<string, unknown>) =>
  resolveDeploymentOptions(readContextOptions(new App({ context }).node));

describe('deployment options from CDK context', () => {
  it('uses the contract defaults when no context is given', () => {
    const options = fromContext({});
    expect(options).toMatchObject({
      prefix: 'stratus',
      driver: 'fake',
      notify_on_state_change: 'None',
      log_retention_days: 30,
      archive_retention_days: 30,
    });
    expect(options.alarm_topic_arn).toBeUndefined();
    expect(options.reply_queue_arns).toBeUndefined();
  });

  it('reads options under their contract names, coercing -c strings', () => {
    const options = fromContext({
      notify_on_state_change: 'vm_and_task_state',
      notify_api_faults: 'true',
      cpu_allocation_ratio: '16.0',
      driver: 'ec2',
    });
    expect(options.notify_on_state_change).toBe('vm_and_task_state');
    expect(options.notify_api_faults).toBe(true);
    expect(options.cpu_allocation_ratio).toBe(16);
    expect(options.driver).toBe('ec2');
  });

  it('parses structured options given as JSON strings (the -c form) or as values (cdk.json)', () => {
    const flavor = { name: 'c1', flavorid: 'c1', id: 9, vcpus: 2, memory_mb: 1024, root_gb: 10 };
    expect(fromContext({ flavors: JSON.stringify([flavor]) }).flavors).toEqual([
      { ...flavor, ephemeral_gb: 0 },
    ]);
    expect(fromContext({ admin_producers: ['AROAEXAMPLE'] }).admin_producers).toEqual([
      'AROAEXAMPLE',
    ]);
  });

  it('names the offending key when a value is invalid', () => {
    expect(() => fromContext({ notify_on_state_change: 'always' })).toThrow(
      /notify_on_state_change: /,
    );
    expect(() => fromContext({ prefix: 'Not_Valid' })).toThrow(/prefix: /);
    expect(() => fromContext({ log_retention_days: '31' })).toThrow(/log_retention_days: /);
    expect(() => fromContext({ producer_principals: '["someone"]' })).toThrow(
      /producer_principals at 0: .*IAM ARN/,
    );
  });

  it('names the key when a structured value is not JSON', () => {
    expect(() => fromContext({ fake_nodes: '[{"node": ' })).toThrow(/"fake_nodes": not valid JSON/);
  });

  it('fails synth of the stack itself on a bad context value', () => {
    expect(() => new StratusStack(testApp({ driver: 'libvirt' }), 'Stratus')).toThrow(/driver: /);
  });

  it('lets stack props override context of the same name', () => {
    const stack = new StratusStack(testApp({ prefix: 'from-context' }), 'Stratus', {
      options: { prefix: 'from-props' },
    });
    expect(stack.options.prefix).toBe('from-props');
  });
});

describe('function environment', () => {
  it('round-trips through lib/config.ts: the functions load exactly the synthesized options', () => {
    const options = fromContext({
      prefix: 'blue',
      notify_on_state_change: 'vm_state',
      admin_producers: '["AROAADMIN"]',
      reserved_host_memory_mb: '1024',
      shelved_offload_time: '-1',
    });
    const config = loadConfig(functionEnvironment(options));
    expect(config).toMatchObject({
      prefix: 'blue',
      notify_on_state_change: 'vm_state',
      admin_producers: ['AROAADMIN'],
      reserved_host_memory_mb: 1024,
      shelved_offload_time: -1,
      flavors: options.flavors,
      fake_nodes: options.fake_nodes,
      tables: { state: 'blue-state', idempotency: 'blue-idempotency' },
      event_bus: 'blue-notifications',
    });
  });

  it('carries an explicit bus name and leaves out options no function reads', () => {
    const environment = functionEnvironment(
      fromContext({
        event_bus_name: 'shared-bus',
        producer_principals: '["arn:aws:iam::123456789012:role/producer"]',
        driver: 'ec2',
      }),
    );
    expect(environment.STRATUS_EVENT_BUS_NAME).toBe('shared-bus');
    for (const absent of [
      'STRATUS_PRODUCER_PRINCIPALS',
      'STRATUS_LOCAL_TICK_SECONDS',
      'STRATUS_LOG_RETENTION_DAYS',
      'STRATUS_REPLY_QUEUE_ARNS',
      'STRATUS_FAKE_NODES',
    ]) {
      expect(environment).not.toHaveProperty(absent);
    }
  });

  it('passes the ec2 settings as STRATUS_EC2 to driver=ec2 functions only, round-tripping', () => {
    const ec2 = {
      region: 'eu-west-1',
      subnets: { 'net-a': 'subnet-0abc' },
      default_subnet: 'subnet-0def',
      pools: [{ node: 'ec2:eu-west-1a', availability_zone: 'eu-west-1a', vcpus: 64 }],
    };
    const options = fromContext({ driver: 'ec2', ec2: JSON.stringify(ec2) });
    const environment = functionEnvironment(options);
    expect(JSON.parse(environment.STRATUS_EC2!)).toMatchObject(ec2);
    expect(loadConfig(environment).ec2).toEqual(options.ec2);
    expect(loadConfig(environment).ec2.pools[0]).toMatchObject({ vcpus: 64, local_gb: 1_048_576 });

    const fake = functionEnvironment(fromContext({ ec2: JSON.stringify(ec2) }));
    expect(fake).not.toHaveProperty('STRATUS_EC2');
    expect(fake.STRATUS_DRIVER).toBe('fake');
  });

  it("refuses an environment over Lambda's 4 KB limit, naming the largest variable", () => {
    expect(() =>
      assertEnvironmentFits({ STRATUS_FLAVORS: 'x'.repeat(4000), STRATUS_HOST: 'h' }),
    ).not.toThrow();
    expect(() =>
      assertEnvironmentFits({ STRATUS_FLAVORS: 'x'.repeat(LAMBDA_ENVIRONMENT_LIMIT_BYTES) }),
    ).toThrow(/STRATUS_FLAVORS \(\d+ bytes\)/);
  });
});
