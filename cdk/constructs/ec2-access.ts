// What a function running the EC2 driver may do in EC2 (driver=ec2 only), action by action, for
// exactly the calls lib/virt/ec2/driver.ts makes. The deployment's tag `stratus:deployment =
// <prefix>` is the boundary, as it is in the driver (lib/virt/ec2/tags.ts):
//
// - what the driver creates (instances, their volumes and interfaces, extra interfaces, AMIs)
//   must carry the tag in the create request itself (`aws:RequestTag`), and CreateTags is only
//   allowed as part of those creates (`ec2:CreateAction`): nothing untagged can be launched, and
//   no existing resource can be tagged into the deployment;
// - what it changes afterwards (start, stop, reboot, terminate, resize, console, NMI, image,
//   attach/detach) must already carry the tag (`aws:ResourceTag`): other deployments' instances
//   and instances nobody gave Stratus are out of reach, even to a function that misbehaves;
// - later tag writes on its own instances are limited to the keys the driver moves
//   (`aws:TagKeys`: intent, intent command, node, usage), so identity tags never change;
// - Describe* cannot be scoped in EC2 (no resource-level permissions), so it is `*`;
// - what a launch or an attach reads but does not own (AMIs and their snapshots, subnets,
//   security groups, key pairs, Dedicated Hosts, the volumes Cinder hands over) cannot carry
//   our tag, so those resource types are named without a condition.
//
// Every function that composes the driver gets the same grant: operations walk on from
// lifecycle events and from the sweeper (a resize's `stopped` event modifies and starts the
// instance, a shelve's snapshot completion terminates it), so the lifecycle-events and
// periodic-tasks functions make the same calls as the command functions. Functions that only
// read the driver's inventory (the usage audit) get the Describe* statement alone.

import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { TAG } from '../../lib/virt/ec2/tags.ts';

/** What the driver reads: EC2 has no resource-level permissions for these. */
export const EC2_DESCRIBE_ACTIONS = [
  'ec2:DescribeInstances',
  'ec2:DescribeInstanceTypes',
  'ec2:DescribeImages',
  'ec2:DescribeNetworkInterfaces',
] as const;

/** Calls on an instance of this deployment (resource `instance`, `aws:ResourceTag`). */
export const EC2_INSTANCE_ACTIONS = [
  'ec2:StartInstances',
  'ec2:StopInstances',
  'ec2:RebootInstances',
  'ec2:TerminateInstances',
  'ec2:ModifyInstanceAttribute',
  'ec2:GetConsoleOutput',
  'ec2:SendDiagnosticInterrupt',
  'ec2:CreateImage',
  'ec2:AttachVolume',
  'ec2:DetachVolume',
  'ec2:AttachNetworkInterface',
  'ec2:DetachNetworkInterface',
] as const;

/** Creates whose TagSpecifications carry the deployment tag (`ec2:CreateAction` of CreateTags). */
export const EC2_TAGGED_CREATES = ['RunInstances', 'CreateImage', 'CreateNetworkInterface'];

/** Tag keys the driver writes or removes on instances that are already the deployment's. */
export const EC2_MUTABLE_TAG_KEYS = [TAG.intent, TAG.intentCommand, TAG.node, TAG.usage];
/** Tag keys the driver removes (an emulation's intent, once its step is done). */
export const EC2_REMOVABLE_TAG_KEYS = [TAG.intent, TAG.intentCommand];

export interface Ec2AccessProps {
  /** The deployment (config `prefix`): the value of every `stratus:deployment` tag. */
  readonly deployment: string;
  /** ec2.dedicated_hosts: launches onto Dedicated Hosts, which DescribeHosts discovers. */
  readonly dedicatedHosts: boolean;
  /** The Service Quotas codes of pools sized `"vcpus": "quota"` (read at both levels). */
  readonly quotaCodes?: readonly string[];
}

export type Ec2AccessLevel = 'driver' | 'read';

/** Grants the EC2 driver's calls to a function's role; see the file comment for the rules. */
export class Ec2Access {
  private readonly props: Ec2AccessProps;

  constructor(props: Ec2AccessProps) {
    this.props = props;
  }

  /** Every statement a role gets at `level`, for the stack `role` lives in. */
  statements(stack: Stack, level: Ec2AccessLevel): PolicyStatement[] {
    const { deployment, dedicatedHosts } = this.props;
    const arn = (resource: string, account = true) =>
      stack.formatArn({
        service: 'ec2',
        resource,
        resourceName: '*',
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        ...(account ? {} : { account: '' }),
      });
    const ours = { StringEquals: { [`aws:ResourceTag/${TAG.deployment}`]: deployment } };
    const requested = { StringEquals: { [`aws:RequestTag/${TAG.deployment}`]: deployment } };

    const describe = new PolicyStatement({
      sid: 'Ec2Describe',
      actions: [...EC2_DESCRIBE_ACTIONS, ...(dedicatedHosts ? ['ec2:DescribeHosts'] : [])],
      resources: ['*'],
    });
    // Capacity is read wherever nodes are sized (resource audit, scheduling): both levels.
    const quotas = (this.props.quotaCodes ?? []).map(
      (code) =>
        new PolicyStatement({
          sid: `ServiceQuota${code.replace(/[^A-Za-z0-9]/g, '')}`,
          actions: ['servicequotas:GetServiceQuota'],
          resources: [
            stack.formatArn({
              service: 'servicequotas',
              resource: 'ec2',
              resourceName: code,
              arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
            }),
          ],
        }),
    );
    if (level === 'read') return [describe, ...quotas];

    const instance = arn('instance');
    const volume = arn('volume');
    const networkInterface = arn('network-interface');
    const image = arn('image', false);
    const snapshot = arn('snapshot', false);
    const subnet = arn('subnet');
    const securityGroup = arn('security-group');
    return [
      describe,
      ...quotas,
      new PolicyStatement({
        sid: 'Ec2LaunchTagged',
        actions: ['ec2:RunInstances'],
        resources: [instance, volume, networkInterface],
        conditions: requested,
      }),
      new PolicyStatement({
        sid: 'Ec2LaunchFrom',
        actions: ['ec2:RunInstances'],
        resources: [
          image,
          snapshot,
          subnet,
          securityGroup,
          arn('key-pair'),
          ...(dedicatedHosts ? [arn('dedicated-host')] : []),
        ],
      }),
      new PolicyStatement({
        sid: 'Ec2TagOnCreate',
        actions: ['ec2:CreateTags'],
        resources: [instance, volume, networkInterface, image],
        conditions: {
          StringEquals: {
            'ec2:CreateAction': EC2_TAGGED_CREATES,
            [`aws:RequestTag/${TAG.deployment}`]: deployment,
          },
        },
      }),
      new PolicyStatement({
        sid: 'Ec2OwnInstances',
        actions: [...EC2_INSTANCE_ACTIONS],
        resources: [instance],
        conditions: ours,
      }),
      new PolicyStatement({
        sid: 'Ec2OwnInterfaces',
        actions: [
          'ec2:AttachNetworkInterface',
          'ec2:DetachNetworkInterface',
          'ec2:DeleteNetworkInterface',
        ],
        resources: [networkInterface],
        conditions: ours,
      }),
      new PolicyStatement({
        sid: 'Ec2CreateTaggedInterfaces',
        actions: ['ec2:CreateNetworkInterface'],
        resources: [networkInterface],
        conditions: requested,
      }),
      new PolicyStatement({
        sid: 'Ec2CreateInterfacesIn',
        actions: ['ec2:CreateNetworkInterface'],
        resources: [subnet, securityGroup],
      }),
      new PolicyStatement({
        sid: 'Ec2CreateTaggedImages',
        actions: ['ec2:CreateImage'],
        resources: [image],
        conditions: requested,
      }),
      new PolicyStatement({
        sid: 'Ec2ImageSnapshots',
        actions: ['ec2:CreateImage'],
        resources: [snapshot],
      }),
      new PolicyStatement({
        sid: 'Ec2AttachVolumes',
        actions: ['ec2:AttachVolume', 'ec2:DetachVolume'],
        resources: [volume],
      }),
      new PolicyStatement({
        sid: 'Ec2RetagOwnInstances',
        actions: ['ec2:CreateTags'],
        resources: [instance],
        conditions: {
          ...ours,
          'ForAllValues:StringEquals': { 'aws:TagKeys': EC2_MUTABLE_TAG_KEYS },
        },
      }),
      new PolicyStatement({
        sid: 'Ec2UntagOwnInstances',
        actions: ['ec2:DeleteTags'],
        resources: [instance],
        conditions: {
          ...ours,
          'ForAllValues:StringEquals': { 'aws:TagKeys': EC2_REMOVABLE_TAG_KEYS },
        },
      }),
    ];
  }

  /** Adds the statements to `role` and acknowledges cdk-nag's IAM5 for each wildcard, with why. */
  grantTo(role: IRole, level: Ec2AccessLevel = 'driver'): void {
    const stack = Stack.of(role);
    const statements = this.statements(stack, level);
    for (const statement of statements) role.addToPrincipalPolicy(statement);
    const acknowledge = (resource: string, reason: string) =>
      Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });

    acknowledge(
      '*',
      'EC2 Describe* actions support no resource-level permissions: they can only be granted on ' +
        '*. The driver filters every Describe on the stratus:deployment tag itself.',
    );
    if (level === 'read') return;
    const nagArn = (resource: string, account = true) =>
      `arn:<AWS::Partition>:ec2:<AWS::Region>:${account ? '<AWS::AccountId>' : ''}:${resource}/*`;
    const tagged =
      'Instance ids are assigned by EC2, so no name pattern exists; the statement is ' +
      `conditioned on the stratus:deployment tag (aws:ResourceTag / aws:RequestTag = the ` +
      'deployment), which confines it to resources of this deployment.';
    for (const resource of ['instance', 'network-interface']) acknowledge(nagArn(resource), tagged);
    acknowledge(
      nagArn('volume'),
      `${tagged} AttachVolume/DetachVolume also act on the volumes the volume service hands ` +
        'over, which are not ours to tag; the instance side of both calls is conditioned.',
    );
    acknowledge(
      nagArn('image', false),
      'Launches read AMIs the operator maps (ec2.images) or producers name by id, and snapshot ' +
        'creates AMIs whose ids EC2 assigns; created AMIs must carry the deployment tag ' +
        '(aws:RequestTag), existing ones are not ours to tag.',
    );
    acknowledge(
      nagArn('snapshot', false),
      'RunInstances reads the snapshots behind an AMI and CreateImage creates untagged ' +
        'snapshots; neither can carry the deployment tag.',
    );
    acknowledge(
      nagArn('subnet'),
      'Launches and interfaces use the subnets mapped in ec2.subnets, or the default VPC subnet ' +
        'EC2 picks when none is configured; they belong to the network, not to Stratus.',
    );
    acknowledge(
      nagArn('security-group'),
      'Launches use the groups mapped in ec2.security_groups or the VPC default group EC2 ' +
        'applies; they belong to the network, not to Stratus.',
    );
    acknowledge(nagArn('key-pair'), 'Key pairs are named by instances or ec2.key_name.');
    if (this.props.dedicatedHosts) {
      acknowledge(
        nagArn('dedicated-host'),
        'Launches target the Dedicated Hosts tagged with the deployment, found by DescribeHosts; ' +
          'RunInstances cannot condition on a host tag.',
      );
    }
  }
}
