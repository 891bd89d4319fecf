//! Integration tests of the AI layer: every provider against a scripted server speaking its
//! vendor's wire format, and the budgets around them.

mod anthropic;
mod budget;
mod conformance;
mod local;
mod openai;
