//! Sans-IO messaging patterns: pipes and the routing helpers socket types are built from.
