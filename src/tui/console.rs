//! The console's edge: the terminal (raw mode, alternate screen, mouse, restored on every
//! way out), the input thread, signals, and the event loop that feeds [`App`] and draws it.
//!
//! Rendering is event-driven: a frame is drawn after input, after a sample arrives, on a
//! resize, or when a status message expires — never on a fixed tick — and at most
//! `console.max_fps` times a second. Input is handled before data.

use std::io::{self, Stdout, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    KeyEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use super::conn::{self, Sampling, Source};
use super::keys::Keymap;
use super::state::{App, Command, Options, Reply, Severity};
use super::theme::{Glyphs, Theme, ThemeName};
use super::view;
use crate::config::ConsoleConfig;
use crate::runtime::Kinds;

/// How a console run is set up (config plus flags).
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `[console]` from the config.
    pub config: ConsoleConfig,
    /// `--readonly`.
    pub readonly: bool,
    /// `--no-mouse` (or `console.mouse = false`).
    pub no_mouse: bool,
    /// `--ascii` (or `console.ascii = true`).
    pub ascii: bool,
    /// `--theme`, overriding `console.theme`.
    pub theme: Option<String>,
    /// Quits the console when it turns true (a `goliath shutdown` sent to the local node).
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Why the console stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The terminal could not be set up or written.
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    /// `[console.keys]` is unusable.
    #[error("{0}")]
    Keys(#[from] super::keys::KeymapError),
}

/// Set by the panic hook so the loop stops drawing on a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Restores the terminal when dropped: on quit, on error and during unwinding.
struct TerminalGuard {
    mouse: bool,
}

impl TerminalGuard {
    fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard { mouse };
        // Bracketed paste: a paste arrives as one event, not as keys (a pasted "x" would
        // otherwise ask to cancel, a pasted newline submit).
        execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)?;
        ON_ALTERNATE_SCREEN.store(true, Ordering::SeqCst);
        if mouse {
            execute!(io::stdout(), EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

/// Whether the console's screen is the terminal's alternate one now.
static ON_ALTERNATE_SCREEN: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as the shell expects it. Safe to call more than once.
fn restore_terminal(mouse: bool) {
    let mut stdout = io::stdout();
    if mouse {
        let _ = execute!(stdout, DisableMouseCapture);
    }
    if ON_ALTERNATE_SCREEN.swap(false, Ordering::SeqCst) {
        // Empty, with the cursor at the top, before it is left: a terminal that resizes
        // the alternate screen back to the shell's size to leave it (tmux, after the window
        // grew while the console ran) pushes the rows above the cursor into the shell's
        // screen and scrollback, which then showed a dozen rows of the console.
        let _ = execute!(
            stdout,
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
            crossterm::cursor::MoveTo(0, 0)
        );
    }
    let _ = execute!(
        stdout,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = stdout.flush();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal(self.mouse);
    }
}

/// Restores the terminal before the default panic message prints, so it is readable.
fn install_panic_hook(mouse: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        restore_terminal(mouse);
        previous(info);
    }));
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks) until `stop`.
fn spawn_input(stop: Arc<AtomicBool>) -> mpsc::Receiver<io::Result<Event>> {
    let (sender, receiver) = mpsc::channel(256);
    let spawned = std::thread::Builder::new()
        .name("goliath-console-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match crossterm::event::poll(Duration::from_millis(250)) {
                    Ok(false) => continue,
                    Ok(true) => {
                        let event = crossterm::event::read();
                        let failed = event.is_err();
                        if sender.blocking_send(event).is_err() || failed {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        let (failed, receiver) = mpsc::channel(1);
        let _ = failed.try_send(Err(error));
        return receiver;
    }
    receiver
}

/// The theme: `--theme` as typed; else mono under `NO_COLOR`; else the configured one. A
/// flag says more about this run than the environment does.
fn chosen_theme(settings: &ConsoleSettings, no_color: bool) -> ThemeName {
    match settings.theme.as_deref() {
        Some(flag) => ThemeName::resolve(flag, false),
        None => ThemeName::resolve(&settings.config.theme, no_color),
    }
}

/// Builds the console state from the settings.
pub fn build_app(
    settings: &ConsoleSettings,
    remote: Option<String>,
    kinds: Kinds,
) -> Result<App, ConsoleError> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if settings.theme.is_some() {
        // crossterm itself drops colours under NO_COLOR unless told otherwise.
        crossterm::style::force_color_output(true);
    }
    let options = Options {
        readonly: settings.readonly,
        theme: Theme::new(chosen_theme(settings, no_color)),
        glyphs: Glyphs::new(settings.ascii || settings.config.ascii),
        mouse: settings.config.mouse && !settings.no_mouse,
        remote,
        task_limit: settings.config.task_limit,
    };
    let keymap = Keymap::with_overrides(&settings.config.keys)?;
    let keyless = keymap.left_keyless(&settings.config.keys);
    let mut app = App::new(options, keymap, kinds);
    if !keyless.is_empty() {
        // Said, not left to be found out when the key does something else.
        app.tell(
            Severity::Warning,
            format!(
                "console.keys: {}, so no key is left for it; give it one in [console.keys]",
                keyless.join("; ")
            ),
        );
    }
    Ok(app)
}

/// Runs the console on this terminal until the user quits, SIGTERM/SIGINT/SIGHUP arrives, or
/// input ends. The terminal is restored on every way out.
pub fn run(source: Source, settings: ConsoleSettings) -> Result<(), ConsoleError> {
    let (remote, kinds) = match &source {
        Source::Local(node) => (None, node.kinds().clone()),
        Source::Remote { address, .. } => (Some(address.clone()), Kinds::new()),
    };
    let mut app = build_app(&settings, remote, kinds)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mouse = app.options.mouse;
    install_panic_hook(mouse);
    let guard = TerminalGuard::enter(mouse)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let stop_input = Arc::new(AtomicBool::new(false));
    let result = runtime.block_on(event_loop(
        &mut terminal,
        &mut app,
        source,
        &settings,
        stop_input.clone(),
    ));
    stop_input.store(true, Ordering::Relaxed);
    // ratatui's Terminal shows a hidden cursor when dropped and prints "Failed to show the
    // cursor" when it cannot: the terminal is gone (SIGHUP, a closed tmux window), which is
    // no error of the console's. A terminal that cannot show it is left as it is; the guard
    // restores whatever can still be restored.
    if terminal.show_cursor().is_err() {
        std::mem::forget(terminal);
    } else {
        drop(terminal);
    }
    drop(guard);
    // Leave the default hook for whatever runs after the console (node shutdown).
    let _ = std::panic::take_hook();
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    source: Source,
    settings: &ConsoleSettings,
    stop_input: Arc<AtomicBool>,
) -> Result<(), ConsoleError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut input = spawn_input(stop_input);
    let mut shutdown = settings.shutdown.clone();
    let shutdown_requested = async move {
        match &mut shutdown {
            Some(receiver) => {
                let _ = receiver.wait_for(|requested| *requested).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(shutdown_requested);
    let (command_sender, command_receiver) = mpsc::channel::<Command>(64);
    let (reply_sender, mut replies) = mpsc::channel::<Reply>(64);
    let sampling = Sampling {
        refresh: settings.config.refresh,
        task_limit: settings.config.task_limit,
    };
    let connection = tokio::spawn(conn::run(source, sampling, command_receiver, reply_sender));
    let min_frame = Duration::from_secs(1) / settings.config.max_fps.max(1);
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    while !app.quit && !PANICKED.load(Ordering::SeqCst) {
        let now = Instant::now();
        let frame_due = last_draw.map_or(now, |at| at + min_frame);
        // Some keys act only once the log widget has been drawn after them: drawn at once.
        if dirty && (now >= frame_due || app.draw_before_next_key) {
            app.draw_before_next_key = false;
            let mut hits = None;
            terminal.draw(|frame| hits = Some(view::render(frame, app)))?;
            app.hits = hits.unwrap_or_default();
            last_draw = Some(now);
            dirty = false;
        }
        let redraw_at = dirty.then_some(frame_due);
        let expire_at = app.next_deadline(Instant::now());
        let commands = tokio::select! {
            biased;
            event = input.recv() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    dirty = true;
                    app.on_key(key)
                }
                Some(Ok(Event::Mouse(mouse))) => {
                    dirty = true;
                    app.on_mouse(mouse)
                }
                Some(Ok(Event::Paste(text))) => {
                    dirty = true;
                    app.on_paste(&text)
                }
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(error)) => return Err(error.into()),
                None => break,
            },
            _ = terminate.recv() => { app.quit = true; Vec::new() }
            _ = interrupt.recv() => { app.quit = true; Vec::new() }
            _ = hangup.recv() => { app.quit = true; Vec::new() }
            _ = &mut shutdown_requested => { app.quit = true; Vec::new() }
            reply = replies.recv() => match reply {
                Some(reply) => {
                    let sample = matches!(reply, Reply::Snapshot(_));
                    // A sample changes nothing on screen while the display is paused.
                    dirty |= !(sample && app.paused());
                    app.on_reply(reply)
                }
                None => break,
            },
            _ = sleep_until(redraw_at), if redraw_at.is_some() => Vec::new(),
            _ = sleep_until(expire_at), if expire_at.is_some() => {
                // A status message to drop, or a countdown on screen to move on: redraw.
                app.expire(Instant::now());
                dirty = true;
                Vec::new()
            }
        };
        for command in commands {
            if command_sender.try_send(command).is_err() {
                app.tell(
                    super::state::Severity::Error,
                    "too many requests in flight; wait for the node to answer",
                );
            }
        }
    }
    drop(command_sender);
    connection.abort();
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of a console started with no flags and the default config.
    fn default_settings() -> ConsoleSettings {
        ConsoleSettings {
            config: crate::config::Config::default().console,
            readonly: false,
            no_mouse: false,
            ascii: false,
            theme: None,
            shutdown: None,
        }
    }

    #[test]
    fn a_typed_theme_wins_over_no_color_and_no_color_over_the_configured_one() {
        let mut settings = default_settings();
        settings.config.theme = "light".into();
        assert_eq!(chosen_theme(&settings, false), ThemeName::Light);
        assert_eq!(chosen_theme(&settings, true), ThemeName::Mono);
        settings.theme = Some("dark".into());
        assert_eq!(chosen_theme(&settings, true), ThemeName::Dark);
    }

    #[test]
    fn a_console_whose_keys_leave_an_action_keyless_says_so_at_start() {
        let mut settings = default_settings();
        let app = build_app(&settings, None, Kinds::new()).expect("app");
        assert!(
            app.status.is_none(),
            "the defaults leave every action a key"
        );
        settings
            .config
            .keys
            .insert("cancel".into(), vec!["n".into()]);
        let app = build_app(&settings, None, Kinds::new()).expect("app");
        let status = app.status.expect("a warning");
        assert_eq!(status.severity, Severity::Warning);
        assert!(
            status.text.contains("`submit` lost n to `cancel`")
                && status.text.contains("[console.keys]"),
            "{}",
            status.text
        );
    }
}
