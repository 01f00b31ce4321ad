-- Leaves of chat rooms, for every node to close the sockets that entered the room (kept an hour).
CREATE TABLE IF NOT EXISTS chat_member_leaves (
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chat_room_id BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    left_at      BIGINT NOT NULL,
    KEY chat_member_leaves_by_time (left_at)
) ENGINE = InnoDB;
