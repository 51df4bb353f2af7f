//! The API's description: the route table, the OpenAPI 3.1 document built from it and the
//! Rust types of the bodies, and the Swagger UI and ReDoc pages that show it.

mod document;
pub mod pages;
pub mod routes;

pub use document::document;
pub use pages::DocsAssets;
pub use routes::{Access, Route};
