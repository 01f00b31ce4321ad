-- Leaves of chat rooms, for every node to close the sockets that entered the room (kept an hour).
CREATE TABLE IF NOT EXISTS chat_member_leaves (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_room_id BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    left_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_member_leaves_by_time ON chat_member_leaves (left_at);
