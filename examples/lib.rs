//! Examples of using the engine as a library; see the `[[example]]` targets.
