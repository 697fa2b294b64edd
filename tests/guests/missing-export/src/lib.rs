//! Looks like a transformer (it exports `transform`) but has no `describe` and the
//! wrong signature: the runtime must say which part of the world does not fit.

wit_bindgen::generate!({
    inline: "
        package example:half-done@0.1.0;
        world transformer {
            export transform: func(event: string) -> string;
        }
    ",
});

struct HalfDone;

impl Guest for HalfDone {
    fn transform(event: String) -> String {
        event
    }
}

export!(HalfDone);
