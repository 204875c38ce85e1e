/**
 * dkrzspawner in JupyterLab: the launcher's "Slurm kernels" section, the server's Slurm job in the
 * status bar, and the "Slurm" side panel. Each part is on when both the site (GET dkrzspawner/api/config,
 * the server-side c.DKRZLab traits) and the settings (schema/plugin.json, also a site's overrides) say so.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { ISiteConfig, requestAPI } from './api';
import { JobModel } from './job';
import { setupLauncher } from './launcher';
import { SlurmPanel } from './panel';
import { JobStatus } from './statusbar';

const PLUGIN_ID = '@dkrzspawner/lab:plugin';

/** The extension's icon: a rack of three nodes. */
export const slurmIcon = new LabIcon({
  name: 'dkrzspawner:slurm',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="3" y="3" width="18" height="5" rx="1"/><rect x="3" y="9.5" width="18" height="5" rx="1"/>' +
    '<rect x="3" y="16" width="18" height="5" rx="1"/></g>' +
    '<g fill="#fff"><circle cx="6" cy="5.5" r="1"/><circle cx="6" cy="12" r="1"/><circle cx="6" cy="18.5" r="1"/></g>' +
    '</svg>'
});

/** The user's (or the site's overridden) settings of schema/plugin.json. */
interface ISettings {
  launcher: boolean;
  statusbar: boolean;
  panel: boolean;
  notifyMinutes: number[] | null;
}

const DEFAULTS: ISettings = {
  launcher: true,
  statusbar: true,
  panel: true,
  notifyMinutes: null
};

async function loadSettings(registry: ISettingRegistry | null): Promise<ISettings> {
  if (!registry) {
    return DEFAULTS;
  }
  try {
    const settings = await registry.load(PLUGIN_ID);
    return { ...DEFAULTS, ...(settings.composite as Partial<ISettings>) };
  } catch (error) {
    console.warn('dkrzspawner: settings not loaded, using the defaults', error);
    return DEFAULTS;
  }
}

/** Set the parts up once the settings and the site's config are known. */
async function setup(
  app: JupyterFrontEnd,
  launcher: ILauncher | null,
  statusBar: IStatusBar | null,
  registry: ISettingRegistry | null
): Promise<void> {
  const settings = await loadSettings(registry);
  let site: ISiteConfig;
  try {
    site = await requestAPI<ISiteConfig>('config');
  } catch (error) {
    console.warn('dkrzspawner: the server extension does not answer; the Slurm parts stay off', error);
    return;
  }
  if (launcher && settings.launcher && site.templates) {
    setupLauncher(app, launcher, slurmIcon).catch(error =>
      console.warn('dkrzspawner: the Slurm kernels section failed', error)
    );
  }
  const wantStatus = !!statusBar && settings.statusbar && site.statusbar;
  const wantPanel = settings.panel && site.panel;
  if (!wantStatus && !wantPanel) {
    return;
  }
  const job = new JobModel(settings.notifyMinutes ?? site.notify_minutes ?? []);
  if (wantStatus) {
    const item = new JobStatus(job);
    statusBar!.registerStatusItem('@dkrzspawner/lab:job', {
      item,
      align: 'left',
      rank: 100,
      isActive: () => !!job.job?.in_job,
      activeStateChanged: job.fetched
    });
    if (wantPanel) {
      item.node.addEventListener('click', () =>
        app.shell.activateById('dkrz-slurm-panel')
      );
    }
  }
  if (wantPanel) {
    app.shell.add(new SlurmPanel(job, slurmIcon), 'left', { rank: 900 });
  }
  job.start();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Slurm kernels in the launcher, the server job in the status bar, a Slurm panel.',
  autoStart: true,
  optional: [ILauncher, IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null,
    registry: ISettingRegistry | null
  ) => {
    // not awaited: JupyterLab's start does not wait for the server's answers
    void setup(app, launcher, statusBar, registry);
  }
};

export default plugin;
