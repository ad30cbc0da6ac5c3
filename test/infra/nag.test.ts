import { Validations, type App } from 'aws-cdk-lib';
import type { PolicyValidationPluginReport } from 'aws-cdk-lib';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyNagChecks } from '../../lib/nag';
import { WxgateStack } from '../../lib/wxgate-stack';
import { synthGateway, testApp } from './fixture';

interface Ack {
  path: string;
  id: string;
  reason: string;
}

/** Every acknowledgement recorded with `Validations.of(x).acknowledge`, with where it was made. */
function acknowledgements(app: App): Ack[] {
  return app.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
          path: c.node.path,
          id: id.replace(/^annotation::/i, ''),
          reason: String(reason),
        })),
      ),
  );
}

const describeViolations = (report: PolicyValidationPluginReport) =>
  report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);

describe('cdk-nag AwsSolutions', () => {
  const { app, stack, nag } = synthGateway();

  test('no unacknowledged errors or warnings', () => {
    const report = nag.validateScope(app);
    expect(describeViolations(report)).toEqual([]);
    expect(report.success).toBe(true);
  });

  test('a real synthesis runs the checks as a CDK validation plugin and passes', () => {
    const synthApp = testApp();
    new WxgateStack(synthApp, 'Wxgate');
    applyNagChecks(synthApp);
    const assembly = synthApp.synth(); // throws «ValidationFailed» on any unacknowledged finding
    const reportPath = join(assembly.directory, 'validation-report.json');
    if (existsSync(reportPath)) {
      const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { pluginReports: Array<{ violations: unknown[] }> };
      expect(report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
    }
  });

  const acks = acknowledgements(app);

  test('acknowledgements are narrow: on resources, never on the app or the whole stack', () => {
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(ack.path).not.toBe(stack.node.path);
      expect(ack.path).not.toBe(app.node.path);
      expect(ack.path.startsWith(`${stack.node.path}/`)).toBe(true);
    }
  });

  test.each(acks.map((a) => [`${a.path} ${a.id}`, a] as const))(
    '%s has a specific reason',
    (_name, ack) => {
      expect(ack.id).toMatch(/^AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
      expect(ack.reason.length).toBeGreaterThanOrEqual(80);
      expect(ack.reason).not.toMatch(/^(n\/a|todo|tbd|ok|fine|not needed|not required)\.?$/i);
    },
  );

  test('every acknowledgement silences a finding that really occurs (no stale or blanket acknowledgements)', () => {
    const fresh = synthGateway();
    const freshAcks = acknowledgements(fresh.app);
    // Drop the acknowledgement metadata, then see what cdk-nag would report.
    for (const c of fresh.app.node.findAll()) {
      const entries = (c.node as unknown as { _metadata?: Array<{ type: string }> })._metadata;
      if (!entries) continue;
      for (let i = entries.length - 1; i >= 0; i--) {
        if (entries[i]!.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) entries.splice(i, 1);
      }
    }
    const report = fresh.nag.validateScope(fresh.app);
    for (const ack of freshAcks) {
      const hit = report.violations.some(
        (v) => v.ruleName === ack.id && v.violatingResources.some((r) => r.constructPath === ack.path || r.constructPath?.startsWith(`${ack.path}/`)),
      );
      expect({ ack: `${ack.path} ${ack.id}`, hit }).toEqual({ ack: `${ack.path} ${ack.id}`, hit: true });
    }
  });
});
