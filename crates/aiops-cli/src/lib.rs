//! What the `aiops` binary shares with its tests: driving a real browser.
//!
//! - `browser.rs`: [`browser::ChromeDriver`] (Debian's `chromedriver` on a free port, driving
//!   headless `chromium`) and [`browser::Session`], a W3C WebDriver session. The demo's
//!   browser scenario plays a user with it; the browser tests do the same.

pub mod browser;
