// Shared helpers for the CDK tests: an App with cdk.json's feature flags (so the templates under
// test are the ones `npm run synth` produces) and bundling skipped (so tests take milliseconds and
// do not depend on the state of functions/).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { StratusStack, type StratusStackProps } from '../../cdk/stack.ts';

const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary cloud-assembly directory, removed after the test file. */
export function tempOutdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-cdk-'));
  outdirs.push(dir);
  return dir;
}

export function testApp(context: Record<string, unknown> = {}, outdir?: string): App {
  return new App({
    outdir: outdir ?? tempOutdir(),
    context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [], ...context },
  });
}

export interface Synthesized {
  stack: StratusStack;
  root: Template;
  /** One template per nested operations stack, in stack order. */
  nested: Template[];
  /** Root and nested templates together. */
  all: Template[];
}

export function synth(
  props: StratusStackProps = {},
  context: Record<string, unknown> = {},
): Synthesized {
  const stack = new StratusStack(testApp(context), 'Stratus', props);
  const root = Template.fromStack(stack);
  const nested = stack.operationStacks.map((nestedStack) => Template.fromStack(nestedStack));
  return { stack, root, nested, all: [root, ...nested] };
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** Every resource of a type across templates, as [logicalId, resource] pairs. */
export function resourcesOfType(
  templates: Template[],
  type: string,
): [string, Resources[string]][] {
  return templates.flatMap((template) =>
    Object.entries(template.toJSON().Resources as Resources).filter(([, r]) => r.Type === type),
  );
}

export function resourceCount(template: Template): number {
  return Object.keys(template.toJSON().Resources as Resources).length;
}
