/**
 * The "Slurm" side panel: this server's job and every allocation of its Slurm kernels, refreshed every
 * few seconds while the panel is visible, with a Cancel button per allocation (confirmed first).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { formatSeconds, IAllocation, requestAPI } from './api';
import { h } from './dom';
import { JobModel } from './job';
import { reportFailure } from './kerneldialog';

/** How often the allocations are asked for while the panel is visible (ms). */
const REFRESH_MS = 5000;

/** The panel widget (id dkrz-slurm-panel). */
export class SlurmPanel extends Widget {
  constructor(
    private readonly job: JobModel,
    icon: LabIcon
  ) {
    super();
    this.id = 'dkrz-slurm-panel';
    this.addClass('dkrz-panel');
    this.title.icon = icon;
    this.title.caption = 'Slurm';
    this.title.label = '';
    this.node.setAttribute('aria-label', 'Slurm');
    this.node.append(
      h('h2', { class: 'dkrz-panel-title' }, 'Slurm'),
      h('h3', {}, "This server's job"),
      this.jobNode,
      h('h3', {}, 'Kernel allocations'),
      this.allocationsNode
    );
    job.changed.connect(this.renderJob, this);
  }

  /** Fetch the allocations now. */
  async refresh(): Promise<void> {
    try {
      const { allocations } = await requestAPI<{ allocations: IAllocation[] }>('allocations');
      this.renderAllocations(allocations);
    } catch (error) {
      this.allocationsNode.replaceChildren(
        h('p', { class: 'dkrz-error' }, `The allocations could not be listed: ${(error as Error).message}`)
      );
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.renderJob();
    void this.refresh();
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearInterval(this.timer);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private renderJob(): void {
    if (!this.isVisible) {
      return;
    }
    const job = this.job.job;
    if (!job) {
      return;
    }
    if (!job.in_job) {
      this.jobNode.replaceChildren(h('p', {}, 'This server does not run as a Slurm job.'));
      return;
    }
    const left = this.job.secondsLeft;
    // Slurm's node list (node[1-2], a,b) names several nodes; cores count all of them, memory and GPUs are per node
    const several = /[,[]/.test(job.node ?? '');
    const rows: [string, string, string][] = [
      ['job_id', 'Job id', job.job_id ?? ''],
      ['partition', 'Partition', job.partition ?? ''],
      ['account', 'Account', job.account ?? ''],
      ['node', several ? 'Nodes' : 'Node', job.node ?? ''],
      ['cores', several ? 'Cores (all nodes)' : 'Cores', String(job.cores ?? '')],
      ['memory', 'Memory per node', job.memory ?? ''],
      ['gpus', 'GPUs per node', String(job.gpus ?? 0)],
      ['started', 'Started', job.started ?? ''],
      ['ends', 'Ends', job.ends ?? ''],
      ['left', 'Time left', left === null ? '' : formatSeconds(left)]
    ];
    this.jobNode.replaceChildren(definitions(rows));
  }

  private renderAllocations(allocations: IAllocation[]): void {
    if (!allocations.length) {
      this.allocationsNode.replaceChildren(
        h('p', { class: 'dkrz-empty' }, 'No Slurm kernel of this server has an allocation.')
      );
      return;
    }
    this.allocationsNode.replaceChildren(
      ...allocations.map(allocation => this.allocationNode(allocation))
    );
  }

  private allocationNode(a: IAllocation): HTMLElement {
    const waiting = a.state === 'PENDING';
    const rows: [string, string, string][] = [
      ['state', 'State', a.state],
      ['kernels', 'Kernels', a.kernels.map(k => k.display_name || k.name).join(', ')],
      ['node', 'Node', a.node || ''],
      ['left', 'Time left', a.seconds_left === null || a.seconds_left === undefined ? '' : formatSeconds(a.seconds_left)]
    ];
    if (waiting) {
      rows.splice(1, 0,
        ['reason', 'Waiting', a.reason || ''],
        ['start', 'Start', a.start_text || a.estimated_start || 'not yet known']
      );
    }
    const cancel = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-warn dkrz-cancel',
        type: 'button',
        'aria-label': `Cancel allocation ${a.job_id}`
      },
      'Cancel'
    );
    cancel.addEventListener('click', () => void this.cancel(a));
    return h(
      'div',
      {
        class: `dkrz-allocation dkrz-state-${a.state.toLowerCase()}`,
        'data-job-id': a.job_id,
        'data-state': a.state
      },
      h('div', { class: 'dkrz-allocation-head' }, h('strong', {}, `Job ${a.job_id}`), cancel),
      definitions(rows.filter(([, , value]) => value !== ''))
    );
  }

  private async cancel(a: IAllocation): Promise<void> {
    const names = a.kernels.map(k => k.display_name || k.name).join(', ');
    const answer = await showDialog({
      title: 'Cancel allocation',
      body: `Cancel Slurm job ${a.job_id}? Its kernels (${names || 'none'}) die, and what they held in memory is lost.`,
      buttons: [Dialog.cancelButton({ label: 'Keep it' }), Dialog.warnButton({ label: 'Cancel job' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`allocations/${encodeURIComponent(a.job_id)}`, { method: 'DELETE' });
    } catch (error) {
      reportFailure(`Job ${a.job_id} could not be cancelled`, error);
    }
    await this.refresh();
  }

  private readonly jobNode = h('div', { class: 'dkrz-job' }, h('p', {}, 'Asking Slurm…'));
  private readonly allocationsNode = h('div', { class: 'dkrz-allocations' });
  private timer = 0;
}

/** A definition list of [key, label, value] rows, each dd with data-key. */
function definitions(rows: [string, string, string][]): HTMLElement {
  return h(
    'dl',
    { class: 'dkrz-facts' },
    rows.flatMap(([key, label, value]) => [
      h('dt', {}, label),
      h('dd', { 'data-key': key }, value)
    ])
  );
}
